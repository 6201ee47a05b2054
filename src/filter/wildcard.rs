//! `*` wildcard strings, precompiled into the cheapest matcher for their
//! shape (exact, prefix, suffix, contains, or anchored segments) so that
//! matching never allocates and never backtracks.

use memchr::memmem::Finder;

/// A compiled wildcard value. A value without `*` is an exact match.
#[derive(Clone, Debug)]
pub(crate) enum Wildcard {
    /// No wildcard: the whole string must be equal.
    Exact(Box<str>),
    /// Only wildcards: anything matches.
    Any,
    /// `abc*`
    Prefix(Box<str>),
    /// `*abc`
    Suffix(Box<str>),
    /// `*abc*`
    Contains(Box<Finder<'static>>),
    /// `a*b*c`: anchored first and last parts, middle parts in order.
    Segments {
        first: Box<str>,
        middle: Vec<Finder<'static>>,
        last: Box<str>,
    },
}

impl Wildcard {
    /// Builds a matcher from the literal parts between `*`s.
    pub(crate) fn from_parts(parts: &[String]) -> Wildcard {
        match parts {
            [] => Wildcard::Exact("".into()),
            [only] => Wildcard::Exact(only.as_str().into()),
            [first, inner @ .., last] => {
                let middle: Vec<Finder<'static>> = inner
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| Finder::new(p.as_bytes()).into_owned())
                    .collect();
                match (first.is_empty(), last.is_empty(), middle.len()) {
                    (true, true, 0) => Wildcard::Any,
                    (true, false, 0) => Wildcard::Suffix(last.as_str().into()),
                    (false, true, 0) => Wildcard::Prefix(first.as_str().into()),
                    (true, true, 1) => {
                        let mut middle = middle;
                        match middle.pop() {
                            Some(f) => Wildcard::Contains(Box::new(f)),
                            None => Wildcard::Any,
                        }
                    }
                    _ => Wildcard::Segments {
                        first: first.as_str().into(),
                        middle,
                        last: last.as_str().into(),
                    },
                }
            }
        }
    }

    /// Whether `text` matches the whole wildcard.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Wildcard::Exact(s) => text == &**s,
            Wildcard::Any => true,
            Wildcard::Prefix(p) => text.starts_with(&**p),
            Wildcard::Suffix(s) => text.ends_with(&**s),
            Wildcard::Contains(f) => f.find(text.as_bytes()).is_some(),
            Wildcard::Segments {
                first,
                middle,
                last,
            } => {
                let bytes = text.as_bytes();
                if bytes.len() < first.len() + last.len()
                    || !bytes.starts_with(first.as_bytes())
                    || !bytes.ends_with(last.as_bytes())
                {
                    return false;
                }
                let mut hay = &bytes[first.len()..bytes.len() - last.len()];
                for finder in middle {
                    match finder.find(hay) {
                        Some(at) => hay = &hay[at + finder.needle().len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wc(pattern: &str) -> Wildcard {
        let parts: Vec<String> = pattern.split('*').map(str::to_string).collect();
        Wildcard::from_parts(&parts)
    }

    #[test]
    fn shapes_are_precompiled() {
        assert!(matches!(wc("abc"), Wildcard::Exact(_)));
        assert!(matches!(wc("*"), Wildcard::Any));
        assert!(matches!(wc("**"), Wildcard::Any));
        assert!(matches!(wc("ab*"), Wildcard::Prefix(_)));
        assert!(matches!(wc("*ab"), Wildcard::Suffix(_)));
        assert!(matches!(wc("*ab*"), Wildcard::Contains(_)));
        assert!(matches!(wc("a*b"), Wildcard::Segments { .. }));
    }

    #[test]
    fn matches_like_globs() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("AccessDenied*", "AccessDeniedException", true),
            ("AccessDenied*", "xAccessDenied", false),
            (
                "*UnauthorizedOperation",
                "Client.UnauthorizedOperation",
                true,
            ),
            ("*UnauthorizedOperation", "UnauthorizedOperationX", false),
            ("*mid*", "a mid b", true),
            ("*mid*", "mi d", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("*", "", true),
            ("", "", true),
            ("4*", "404", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(wc(pattern).matches(text), expected, "{pattern} vs {text}");
        }
    }
}
