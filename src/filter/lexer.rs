//! Character-level scanning shared by every pattern family: a cursor over
//! the pattern text that reads quoted strings, `%regex%` literals, bare
//! words and operators, and builds positioned [`FilterError`]s.

use super::FilterError;

/// The comparison operators of JSON and space-delimited conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// The operator as written.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A string value read from the pattern, split on unescaped `*` wildcards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pieces {
    /// Literal parts; `parts.len() - 1` wildcards sit between them.
    pub parts: Vec<String>,
    /// Whether the value was written in double quotes.
    pub quoted: bool,
}

impl Pieces {
    /// Whether the value has at least one unescaped `*`.
    pub(crate) fn has_wildcard(&self) -> bool {
        self.parts.len() > 1
    }

    /// The value with wildcards rendered back as `*`.
    pub(crate) fn joined(&self) -> String {
        self.parts.join("*")
    }
}

/// A cursor over the pattern text. Positions are byte offsets and always
/// sit on a character boundary.
pub(crate) struct Cursor<'p> {
    src: &'p str,
    pos: usize,
}

impl<'p> Cursor<'p> {
    pub(crate) fn new(src: &'p str) -> Self {
        Cursor { src, pos: 0 }
    }

    /// Current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The unread rest of the pattern.
    pub(crate) fn rest(&self) -> &'p str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Skips whitespace.
    pub(crate) fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Consumes `lit` if the rest starts with it.
    pub(crate) fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// Consumes the keyword `word` (ASCII, any case) when it is not
    /// followed by another word character.
    pub(crate) fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest().as_bytes();
        if rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && !rest
                .get(word.len())
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// An error at byte `offset`.
    pub(crate) fn error_at(&self, offset: usize, message: impl Into<String>) -> FilterError {
        FilterError::at(self.src, offset, message)
    }

    /// An error at the current position.
    pub(crate) fn error(&self, message: impl Into<String>) -> FilterError {
        self.error_at(self.pos, message)
    }

    /// 1-based column of byte `offset`, for messages that cite another spot.
    pub(crate) fn column_of(&self, offset: usize) -> usize {
        super::column_of(self.src, offset)
    }

    /// Reads a double-quoted string; the cursor is on the opening quote.
    /// `\"` and `\\` escape, `\*` is a literal star, other unescaped `*`
    /// split the value into wildcard pieces.
    pub(crate) fn read_quoted(&mut self) -> Result<Pieces, FilterError> {
        let start = self.pos;
        self.bump();
        let mut pieces = Pieces {
            parts: vec![String::new()],
            quoted: true,
        };
        loop {
            match self.bump() {
                None => return Err(self.error_at(start, "unterminated string")),
                Some('"') => return Ok(pieces),
                Some('\\') => match self.bump() {
                    None => return Err(self.error_at(start, "unterminated string")),
                    Some(c) => push_char(&mut pieces, c),
                },
                Some('*') => pieces.parts.push(String::new()),
                Some(c) => push_char(&mut pieces, c),
            }
        }
    }

    /// Reads a `%regex%` literal; the cursor is on the opening `%`. `\%`
    /// stands for a literal percent sign. Returns the regex source.
    pub(crate) fn read_regex(&mut self) -> Result<(usize, String), FilterError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error_at(start, "unterminated regex: missing closing '%'")),
                Some('%') => break,
                Some('\\') if self.peek() == Some('%') => {
                    self.bump();
                    out.push('%');
                }
                Some(c) => out.push(c),
            }
        }
        if out.is_empty() {
            return Err(self.error_at(start, "empty regex '%%'"));
        }
        Ok((start, out))
    }

    /// Reads an unquoted word up to whitespace, a character in `stops`, or
    /// `&&` / `||`. `*` splits it into wildcard pieces.
    pub(crate) fn read_bare(&mut self, stops: &[char]) -> Pieces {
        let mut pieces = Pieces {
            parts: vec![String::new()],
            quoted: false,
        };
        while let Some(c) = self.peek() {
            let rest = self.rest();
            if c.is_whitespace()
                || stops.contains(&c)
                || rest.starts_with("&&")
                || rest.starts_with("||")
            {
                break;
            }
            self.bump();
            if c == '*' {
                pieces.parts.push(String::new());
            } else {
                push_char(&mut pieces, c);
            }
        }
        pieces
    }

    /// Reads a comparison operator: a run of `=`, `!`, `<`, `>`.
    /// Returns `Ok(None)` when the cursor is not on an operator.
    pub(crate) fn read_op(&mut self) -> Result<Option<Op>, FilterError> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .find(|c: char| !matches!(c, '=' | '!' | '<' | '>'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Ok(None);
        }
        let text = &rest[..len];
        let op = match text {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => {
                return Err(self.error_at(start, "unknown operator '==': use '=' for equality"));
            }
            other => return Err(self.error_at(start, format!("unknown operator '{other}'"))),
        };
        self.pos += len;
        Ok(Some(op))
    }
}

fn push_char(pieces: &mut Pieces, c: char) {
    if let Some(last) = pieces.parts.last_mut() {
        last.push(c);
    }
}

/// Parses a bare literal as a number when it looks like one (digits with an
/// optional sign, fraction and exponent; not `inf` / `nan`).
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_with_escapes_and_wildcards() {
        let mut c = Cursor::new(r#""a\"b*c\*d" rest"#);
        let p = c.read_quoted().unwrap();
        assert_eq!(p.parts, vec!["a\"b".to_string(), "c*d".to_string()]);
        assert_eq!(c.rest(), " rest");
        let mut c = Cursor::new("\"abc");
        assert_eq!(c.read_quoted().unwrap_err().message, "unterminated string");
    }

    #[test]
    fn reads_operators() {
        assert_eq!(Cursor::new(">= 1").read_op().unwrap(), Some(Op::Ge));
        assert_eq!(Cursor::new("x").read_op().unwrap(), None);
        let err = Cursor::new("ab == 1").read_op();
        assert_eq!(err.unwrap(), None);
        let mut c = Cursor::new("== 1");
        assert!(c.read_op().unwrap_err().message.contains("'=='"));
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_number("5"), Some(5.0));
        assert_eq!(parse_number("-1.5e3"), Some(-1500.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("kms.amazonaws.com"), None);
        assert_eq!(parse_number("1.2.3"), None);
    }
}
