//! CloudWatch Logs filter patterns, plus structured predicates.
//!
//! STUB: the real implementation lands from the filter work stream. The
//! public API below is the contract the rest of the engine relies on.

use serde::Deserialize;

use crate::event::Event;
use crate::fields::FieldPlan;

/// A syntax error in a filter pattern, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct FilterError {
    /// Byte offset into the pattern.
    pub offset: usize,
    /// 1-based character column into the pattern.
    pub column: usize,
    pub message: String,
}

/// A compiled CloudWatch Logs filter pattern.
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: String,
}

impl Filter {
    /// Parses a pattern in CloudWatch Logs filter-pattern syntax.
    pub fn parse(pattern: &str) -> Result<Filter, FilterError> {
        Ok(Filter {
            pattern: pattern.to_string(),
        })
    }

    /// Registers the fields the pattern reads in `plan` and resolves slots.
    pub fn bind(&mut self, _plan: &mut FieldPlan) {}

    /// Whether `event` matches.
    pub fn matches(&self, _event: &Event<'_>) -> bool {
        self.pattern.is_empty()
    }

    /// The pattern text, verbatim.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// A structured predicate (the `where:` list of a rule), as written in YAML.
#[derive(Debug, Clone, Deserialize)]
pub struct PredicateSpec {
    pub field: String,
}

/// A compiled structured predicate.
#[derive(Debug, Clone)]
pub struct Predicate;

impl Predicate {
    /// Compiles a predicate, registering its field in `plan`.
    pub fn compile(_spec: &PredicateSpec, _plan: &mut FieldPlan) -> Result<Predicate, String> {
        Ok(Predicate)
    }

    /// Whether `event` satisfies the predicate.
    pub fn matches(&self, _event: &Event<'_>) -> bool {
        true
    }
}
