//! Human durations in rule and config files: `30s`, `5m`, `1h`, `1d`, `250ms`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written as `<number><unit>`, unit one of `ms`, `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `5m`, `90s`, `1h`, `250ms`, `2d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 5m, 1h"))?;
        let millis_per_unit: u64 = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "invalid duration unit {other:?} in {text:?}: use ms, s, m, h or d"
                ))
            }
        };
        let millis = amount
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }

    /// Milliseconds, saturating at `i64::MAX`.
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= size && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    /// Parses inside the visitor: a YAML deserializer then reports a bad
    /// duration at the value's own line and key path (`engine.idle_timeout`),
    /// not at the start of the enclosing mapping.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 30s, 5m or 1h")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        HumanDuration::parse(text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<HumanDuration, E> {
        self.visit_str(&number.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<HumanDuration, E> {
        self.visit_str(&number.to_string())
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(HumanDuration::parse("5m").unwrap().as_millis_i64(), 300_000);
        assert_eq!(
            HumanDuration::parse("1h").unwrap().as_millis_i64(),
            3_600_000
        );
        assert_eq!(HumanDuration::parse("250ms").unwrap().as_millis_i64(), 250);
        assert_eq!(HumanDuration::parse("15m").unwrap().to_string(), "15m");
        assert!(HumanDuration::parse("5 minutes").is_err());
        assert!(HumanDuration::parse("m").is_err());
        assert!(HumanDuration::parse("99999999999999999999d").is_err());
    }

    /// The error points at the value (line 5, column 9), not at the
    /// mapping that holds it (1:1).
    #[test]
    fn a_bad_duration_in_a_rule_file_is_reported_at_its_value() {
        let text = "id: y\ntitle: t\nkind: cloudtrail\nfilter: '{ $.a = 1 }'\nwindow: 5x\nthreshold: \">= 1\"\n";
        let problems = crate::rules::parse_rule_text("y.yaml", text).unwrap_err();
        assert_eq!(
            (problems[0].line, problems[0].column),
            (5, 9),
            "{}",
            problems[0]
        );
        assert!(problems[0].message.contains("window"), "{}", problems[0]);
    }
}
