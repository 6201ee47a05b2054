//! Recursive-descent parser for all filter-pattern families. It picks the
//! family from the first non-blank character (`{` JSON, `[` space-delimited,
//! anything else terms/phrases/regex) and compiles values into matchers.
//! Nesting is capped at [`MAX_DEPTH`] so hostile patterns cannot overflow
//! the stack.

use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexBuilder};

use super::ast::{
    DelimField, Delimited, FieldExpr, FieldTest, JsonCond, JsonExpr, JsonTest, Pattern, Term,
    Terms, ValueMatch,
};
use super::lexer::{parse_number, Cursor, Op};
use super::wildcard::Wildcard;
use super::FilterError;
use crate::fields::{FieldPath, PathSeg};

/// Maximum parenthesis nesting in JSON and space-delimited conditions.
pub(crate) const MAX_DEPTH: usize = 64;
/// Maximum number of fields in a space-delimited pattern.
pub(crate) const MAX_FIELDS: usize = 256;
/// Compiled-program size cap for one regex (bytes).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache cap for one regex (bytes).
pub(crate) const REGEX_DFA_LIMIT: usize = 1 << 21;

/// Characters that end an unquoted JSON value.
const JSON_VALUE_STOPS: &[char] = &[')', '(', '}'];
/// Characters that end an unquoted space-delimited value.
const DELIM_VALUE_STOPS: &[char] = &[',', ']', ')', '('];
/// Characters that end a selector key or a space-delimited field name.
const NAME_STOPS: &[char] = &[
    '.', '[', ']', '=', '!', '<', '>', '(', ')', '&', '|', '{', '}', '"', '\'', '%', ',',
];

/// Parses a whole pattern.
pub(crate) fn parse(src: &str) -> Result<Pattern, FilterError> {
    let mut c = Cursor::new(src);
    c.skip_ws();
    match c.peek() {
        None => Ok(Pattern::All),
        Some('{') => parse_json(&mut c),
        Some('[') => parse_delimited(&mut c),
        Some(_) => parse_terms(&mut c),
    }
}

/// Compiles a regex with the size caps. CloudWatch Logs regexes are ASCII
/// ("multi-byte characters are not supported"): `\d`, `\w`, `\s` and
/// `\b` are the ASCII classes, so a text's non-ASCII digits and letters
/// do not satisfy them, and the regex runs over the text's bytes.
pub(crate) fn compile_regex(
    c: &Cursor<'_>,
    offset: usize,
    source: &str,
) -> Result<Regex, FilterError> {
    RegexBuilder::new(source)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .build()
        .map_err(|e| {
            let detail = match e {
                regex::Error::CompiledTooBig(limit) => {
                    format!("regex too large (compiled size over {limit} bytes)")
                }
                other => {
                    let text = other.to_string();
                    let last = text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    format!(
                        "invalid regex: {}",
                        last.trim().trim_start_matches("error: ")
                    )
                }
            };
            c.error_at(offset, detail)
        })
}

// ---------------------------------------------------------------- terms

fn parse_terms(c: &mut Cursor<'_>) -> Result<Pattern, FilterError> {
    #[derive(Clone, Copy)]
    enum Role {
        Required,
        Optional,
        Excluded,
    }
    let mut terms = Terms::default();
    loop {
        c.skip_ws();
        if c.at_end() {
            break;
        }
        let role = if c.eat("?") {
            Role::Optional
        } else if c.eat("-") {
            Role::Excluded
        } else {
            Role::Required
        };
        let term = match c.peek() {
            None => return Err(c.error("expected a term after the '?' or '-' prefix")),
            Some(ch) if ch.is_whitespace() => {
                return Err(c.error("expected a term right after the '?' or '-' prefix"))
            }
            Some('"') => word_term(&c.read_quoted()?.joined()),
            Some('%') => {
                let (start, source) = c.read_regex()?;
                Term::Regex(compile_regex(c, start, &source)?)
            }
            Some(_) => {
                let rest = c.rest();
                let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let word = &rest[..len];
                let term = word_term(word);
                c.eat(word);
                term
            }
        };
        match role {
            Role::Required => terms.required.push(term),
            Role::Optional => terms.optional.push(term),
            Role::Excluded => terms.excluded.push(term),
        }
    }
    // AWS: "If you combine \"?\" with other filter patterns, all question
    // mark terms will be ignored" (`?ERROR ?ARGUMENTS REQUEST` matches every
    // event containing `REQUEST`).
    if !terms.required.is_empty() || !terms.excluded.is_empty() {
        terms.optional.clear();
    }
    Ok(Pattern::Terms(terms))
}

fn word_term(text: &str) -> Term {
    if text.trim().is_empty() {
        return Term::All;
    }
    Term::Word {
        finder: Box::new(Finder::new(text.as_bytes()).into_owned()),
    }
}

// ---------------------------------------------------------------- JSON

fn parse_json(c: &mut Cursor<'_>) -> Result<Pattern, FilterError> {
    let open = c.pos();
    c.bump();
    c.skip_ws();
    if c.peek() == Some('}') {
        return Err(c.error("empty JSON pattern: expected a condition such as '$.field = value'"));
    }
    let expr = parse_or(c, 0)?;
    c.skip_ws();
    match c.peek() {
        Some('}') => {
            c.bump();
        }
        None => {
            return Err(c.error(format!(
                "expected '}}' to close '{{' opened at column {}",
                c.column_of(open)
            )))
        }
        Some(other) => return Err(unexpected(c, other, "'&&', '||' or '}'")),
    }
    c.skip_ws();
    if !c.at_end() {
        return Err(c.error("unexpected text after the closing '}'"));
    }
    Ok(Pattern::Json(expr))
}

fn unexpected(c: &Cursor<'_>, found: char, expected: &str) -> FilterError {
    let rest = c.rest();
    if rest.starts_with('&') && !rest.starts_with("&&") {
        return c.error("unknown operator '&': use '&&'");
    }
    if rest.starts_with('|') && !rest.starts_with("||") {
        return c.error("unknown operator '|': use '||'");
    }
    c.error(format!("unexpected '{found}': expected {expected}"))
}

fn parse_or(c: &mut Cursor<'_>, depth: usize) -> Result<JsonExpr, FilterError> {
    let mut items = vec![parse_and(c, depth)?];
    loop {
        c.skip_ws();
        if !c.eat("||") {
            break;
        }
        items.push(parse_and(c, depth)?);
    }
    Ok(if items.len() == 1 {
        items.swap_remove(0)
    } else {
        JsonExpr::Or(items)
    })
}

fn parse_and(c: &mut Cursor<'_>, depth: usize) -> Result<JsonExpr, FilterError> {
    let mut items = vec![parse_primary(c, depth)?];
    loop {
        c.skip_ws();
        if !c.eat("&&") {
            break;
        }
        items.push(parse_primary(c, depth)?);
    }
    Ok(if items.len() == 1 {
        items.swap_remove(0)
    } else {
        JsonExpr::And(items)
    })
}

fn parse_primary(c: &mut Cursor<'_>, depth: usize) -> Result<JsonExpr, FilterError> {
    c.skip_ws();
    match c.peek() {
        Some('(') => {
            if depth >= MAX_DEPTH {
                return Err(c.error(format!("parentheses nested too deeply (max {MAX_DEPTH})")));
            }
            let open = c.pos();
            c.bump();
            let inner = parse_or(c, depth + 1)?;
            c.skip_ws();
            if c.eat(")") {
                Ok(inner)
            } else {
                Err(c.error(format!(
                    "expected ')' to close '(' opened at column {}",
                    c.column_of(open)
                )))
            }
        }
        Some('$') => parse_condition(c).map(JsonExpr::Cond),
        None => Err(c.error("unexpected end of pattern: expected a condition")),
        Some(other) => Err(unexpected(c, other, "a selector starting with '$.' or '('")),
    }
}

fn parse_selector(c: &mut Cursor<'_>) -> Result<FieldPath, FilterError> {
    let start = c.pos();
    c.bump(); // '$'
    let mut segs = Vec::new();
    loop {
        match c.peek() {
            Some('.') => {
                c.bump();
                if c.peek() == Some('[') {
                    continue;
                }
                let key_start = c.pos();
                let rest = c.rest();
                let len = rest
                    .find(|ch: char| ch.is_whitespace() || NAME_STOPS.contains(&ch))
                    .unwrap_or(rest.len());
                if len == 0 {
                    return Err(c.error_at(key_start, "expected a key name after '.' in selector"));
                }
                if &rest[..len] == "*" {
                    // `$.*`: every member of the object (one level).
                    segs.push(PathSeg::AnyKey);
                } else {
                    segs.push(PathSeg::Key(rest[..len].into()));
                }
                c.eat(&rest[..len]);
            }
            Some('[') => {
                let open = c.pos();
                c.bump();
                c.skip_ws();
                match c.peek() {
                    Some(q @ ('\'' | '"')) => {
                        c.bump();
                        let rest = c.rest();
                        let Some(len) = rest.find(q) else {
                            return Err(c.error_at(open, "unterminated quoted key in selector"));
                        };
                        segs.push(PathSeg::Key(rest[..len].into()));
                        c.eat(&rest[..len]);
                        c.bump();
                    }
                    Some('*') => {
                        // `[*]`: every element of the array.
                        c.bump();
                        segs.push(PathSeg::AnyIndex);
                    }
                    _ => {
                        let digits_at = c.pos();
                        let rest = c.rest();
                        let len = rest
                            .find(|ch: char| !ch.is_ascii_digit())
                            .unwrap_or(rest.len());
                        let index: u32 = rest[..len].parse().map_err(|_| {
                            c.error_at(digits_at, "array index must be a non-negative integer")
                        })?;
                        segs.push(PathSeg::Index(index));
                        c.eat(&rest[..len]);
                    }
                }
                c.skip_ws();
                if !c.eat("]") {
                    return Err(c.error(format!(
                        "expected ']' to close '[' opened at column {}",
                        c.column_of(open)
                    )));
                }
            }
            _ => break,
        }
    }
    match segs.first() {
        None => Err(c.error_at(start, "expected '.' after '$' in selector")),
        Some(PathSeg::Index(_) | PathSeg::AnyIndex) => {
            Err(c.error_at(start, "selector must start with a key, as in '$.key'"))
        }
        Some(PathSeg::Key(_) | PathSeg::AnyKey) => Ok(FieldPath::from_segs(segs)),
    }
}

fn parse_condition(c: &mut Cursor<'_>) -> Result<JsonCond, FilterError> {
    let path = parse_selector(c)?;
    c.skip_ws();
    let test = if c.eat_keyword("IS") {
        c.skip_ws();
        if c.eat_keyword("NULL") {
            JsonTest::IsNull
        } else if c.eat_keyword("TRUE") {
            JsonTest::IsTrue
        } else if c.eat_keyword("FALSE") {
            JsonTest::IsFalse
        } else {
            return Err(c.error("expected NULL, TRUE or FALSE after IS"));
        }
    } else if c.eat_keyword("NOT") {
        c.skip_ws();
        if !c.eat_keyword("EXISTS") {
            return Err(c.error("expected EXISTS after NOT"));
        }
        JsonTest::NotExists
    } else if c.eat_keyword("EXISTS") {
        JsonTest::Exists
    } else {
        let op_at = c.pos();
        let Some(op) = c.read_op()? else {
            return Err(match c.peek() {
                None => c.error(
                    "expected an operator (=, !=, <, <=, >, >=, IS, NOT EXISTS) after the selector",
                ),
                Some(_) => c.error_at(
                    op_at,
                    "expected an operator (=, !=, <, <=, >, >=, IS, NOT EXISTS) after the selector",
                ),
            });
        };
        match parse_value(c, op, JSON_VALUE_STOPS)? {
            Value::Match(m) if op == Op::Eq => JsonTest::Eq(m),
            Value::Match(m) => JsonTest::Ne(m),
            Value::Number(n) => JsonTest::Cmp(op, n),
        }
    };
    Ok(JsonCond {
        path,
        slot: None,
        test,
    })
}

enum Value {
    /// For `=` / `!=`.
    Match(ValueMatch),
    /// For ordering operators.
    Number(f64),
}

fn parse_value(c: &mut Cursor<'_>, op: Op, stops: &[char]) -> Result<Value, FilterError> {
    c.skip_ws();
    let start = c.pos();
    let ordering = !matches!(op, Op::Eq | Op::Ne);
    let pieces = match c.peek() {
        Some('"') => c.read_quoted()?,
        Some('%') => {
            if ordering {
                return Err(c.error(format!("a regex cannot be compared with '{}'", op.as_str())));
            }
            let (at, source) = c.read_regex()?;
            return Ok(Value::Match(ValueMatch::Regex(compile_regex(
                c, at, &source,
            )?)));
        }
        _ => {
            let pieces = c.read_bare(stops);
            if pieces.parts.len() == 1 && pieces.parts[0].is_empty() {
                return Err(c.error(format!("expected a value after '{}'", op.as_str())));
            }
            pieces
        }
    };
    if ordering {
        if pieces.has_wildcard() {
            return Err(c.error_at(
                start,
                format!("expected a number after '{}', not a wildcard", op.as_str()),
            ));
        }
        let text = pieces.joined();
        return parse_number(text.trim()).map(Value::Number).ok_or_else(|| {
            c.error_at(
                start,
                format!("expected a number after '{}', found '{text}'", op.as_str()),
            )
        });
    }
    if !pieces.quoted && !pieces.has_wildcard() {
        let text = pieces.joined();
        if let Some(value) = parse_number(&text) {
            return Ok(Value::Match(ValueMatch::Number {
                value,
                text: text.into(),
            }));
        }
    }
    Ok(Value::Match(ValueMatch::Text(Wildcard::from_parts(
        &pieces.parts,
    ))))
}

// ---------------------------------------------------------------- space-delimited

fn parse_delimited(c: &mut Cursor<'_>) -> Result<Pattern, FilterError> {
    let open = c.pos();
    c.bump();
    let mut groups: Vec<Vec<DelimField>> = vec![Vec::new()];
    let mut count = 0usize;
    c.skip_ws();
    if !c.eat("]") {
        loop {
            c.skip_ws();
            if c.eat("...") {
                groups.push(Vec::new());
            } else {
                if count >= MAX_FIELDS {
                    return Err(c.error(format!("too many fields (max {MAX_FIELDS})")));
                }
                let field = parse_delim_field(c)?;
                count += 1;
                if let Some(group) = groups.last_mut() {
                    group.push(field);
                }
            }
            c.skip_ws();
            if c.eat(",") {
                continue;
            }
            if c.eat("]") {
                break;
            }
            return Err(match c.peek() {
                None => c.error(format!(
                    "expected ']' to close '[' opened at column {}",
                    c.column_of(open)
                )),
                Some(other) => unexpected(c, other, "',' or ']'"),
            });
        }
    }
    c.skip_ws();
    if !c.at_end() {
        return Err(c.error("unexpected text after the closing ']'"));
    }
    Ok(Pattern::Delimited(Delimited::new(groups)))
}

/// State while parsing one field's condition: the field name (all atoms
/// must name the same field) and where a bare name without operator was.
struct FieldCtx {
    name: Option<Box<str>>,
    bare_at: Option<usize>,
    atoms: usize,
}

fn parse_delim_field(c: &mut Cursor<'_>) -> Result<DelimField, FilterError> {
    let mut ctx = FieldCtx {
        name: None,
        bare_at: None,
        atoms: 0,
    };
    let expr = parse_f_or(c, 0, &mut ctx)?;
    let name = ctx.name.unwrap_or_default();
    match (expr, ctx.bare_at) {
        (None, _) if ctx.atoms == 1 => Ok(DelimField { name, cond: None }),
        (_, Some(at)) => Err(c.error_at(at, format!("expected an operator after '{name}'"))),
        (expr, None) => Ok(DelimField { name, cond: expr }),
    }
}

fn parse_f_or(
    c: &mut Cursor<'_>,
    depth: usize,
    ctx: &mut FieldCtx,
) -> Result<Option<FieldExpr>, FilterError> {
    let mut items = vec![parse_f_and(c, depth, ctx)?];
    loop {
        c.skip_ws();
        if !c.eat("||") {
            break;
        }
        items.push(parse_f_and(c, depth, ctx)?);
    }
    Ok(combine(items, FieldExpr::Or))
}

fn parse_f_and(
    c: &mut Cursor<'_>,
    depth: usize,
    ctx: &mut FieldCtx,
) -> Result<Option<FieldExpr>, FilterError> {
    let mut items = vec![parse_f_primary(c, depth, ctx)?];
    loop {
        c.skip_ws();
        if !c.eat("&&") {
            break;
        }
        items.push(parse_f_primary(c, depth, ctx)?);
    }
    Ok(combine(items, FieldExpr::And))
}

fn combine(
    mut items: Vec<Option<FieldExpr>>,
    make: fn(Vec<FieldExpr>) -> FieldExpr,
) -> Option<FieldExpr> {
    if items.len() == 1 {
        return items.pop().flatten();
    }
    // A `None` (bare name) inside a compound is reported by the caller via
    // `FieldCtx::bare_at`; here it just drops out.
    Some(make(items.into_iter().flatten().collect()))
}

fn parse_f_primary(
    c: &mut Cursor<'_>,
    depth: usize,
    ctx: &mut FieldCtx,
) -> Result<Option<FieldExpr>, FilterError> {
    c.skip_ws();
    if c.peek() == Some('(') {
        if depth >= MAX_DEPTH {
            return Err(c.error(format!("parentheses nested too deeply (max {MAX_DEPTH})")));
        }
        let open = c.pos();
        c.bump();
        ctx.atoms += 1; // a parenthesised group is never a bare field
        let inner = parse_f_or(c, depth + 1, ctx)?;
        c.skip_ws();
        if !c.eat(")") {
            return Err(c.error(format!(
                "expected ')' to close '(' opened at column {}",
                c.column_of(open)
            )));
        }
        return Ok(inner);
    }
    let name_at = c.pos();
    let rest = c.rest();
    let len = rest
        .find(|ch: char| ch.is_whitespace() || (NAME_STOPS.contains(&ch) && ch != '.'))
        .unwrap_or(rest.len());
    if len == 0 {
        return Err(match c.peek() {
            None => c.error("unexpected end of pattern: expected a field name"),
            Some(other) => unexpected(c, other, "a field name"),
        });
    }
    let name = &rest[..len];
    match &ctx.name {
        None => ctx.name = Some(name.into()),
        Some(first) if &**first != name => {
            return Err(c.error_at(
                name_at,
                format!("condition names '{name}' but this field is named '{first}'"),
            ))
        }
        Some(_) => {}
    }
    c.eat(name);
    ctx.atoms += 1;
    c.skip_ws();
    let Some(op) = c.read_op()? else {
        if ctx.bare_at.is_none() {
            ctx.bare_at = Some(name_at);
        }
        return Ok(None);
    };
    let test = match parse_value(c, op, DELIM_VALUE_STOPS)? {
        Value::Match(m) if op == Op::Eq => FieldTest::Eq(m),
        Value::Match(m) => FieldTest::Ne(m),
        Value::Number(n) => FieldTest::Cmp(op, n),
    };
    Ok(Some(FieldExpr::Test(test)))
}
