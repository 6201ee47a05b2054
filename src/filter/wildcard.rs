//! `*` wildcard strings, precompiled into the cheapest matcher for their
//! shape (exact, prefix, suffix or contains) so that matching never
//! allocates and never backtracks.
//!
//! As in CloudWatch Logs, `*` is a wildcard only at the start or the end
//! of a value ("match any text at, before, or after a search term"): one
//! inside it is the character itself (`Ev*ent` matches only the string
//! `Ev*ent`).

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
}

impl Wildcard {
    /// Builds a matcher from the literal parts between `*`s (an escaped
    /// `*` is inside a part). Only a `*` before the first part or after
    /// the last is a wildcard; the others join the parts again.
    pub(crate) fn from_parts(parts: &[String]) -> Wildcard {
        let [first, .., last] = parts else {
            return Wildcard::Exact(parts.first().map_or("", String::as_str).into());
        };
        let (leading, trailing) = (first.is_empty(), last.is_empty());
        let from = usize::from(leading);
        let to = parts.len() - usize::from(trailing);
        let core = parts
            .get(from..to)
            .map(|core| core.join("*"))
            .unwrap_or_default();
        match (leading, trailing) {
            _ if (leading || trailing) && core.is_empty() => Wildcard::Any,
            (true, true) => Wildcard::Contains(Box::new(Finder::new(core.as_bytes()).into_owned())),
            (true, false) => Wildcard::Suffix(core.into()),
            (false, true) => Wildcard::Prefix(core.into()),
            (false, false) => Wildcard::Exact(core.into()),
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
        assert!(matches!(wc("a*b"), Wildcard::Exact(_)));
        assert!(matches!(wc("*a*b*"), Wildcard::Contains(_)));
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
            // Inside a value, `*` is the character itself (AWS: "Ev*ent
            // will only match the actual string Ev*ent").
            ("Ev*ent", "Ev*ent", true),
            ("Ev*ent", "EvXent", false),
            ("Ev*ent", "Event", false),
            ("a*b*c", "axxbyyc", false),
            ("*a*b", "x a*b", true),
            ("*a*b", "x axb", false),
            (
                "arn:aws:iam::*:role/Admin*",
                "arn:aws:iam::*:role/Admins",
                true,
            ),
            (
                "arn:aws:iam::*:role/Admin*",
                "arn:aws:iam::123:role/Admin",
                false,
            ),
            ("*", "", true),
            ("", "", true),
            ("4*", "404", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(wc(pattern).matches(text), expected, "{pattern} vs {text}");
        }
    }
}
