//! Rules: the YAML format, loading (built-in pack, user directories,
//! overrides), compilation and inline tests.
//!
//! Loading order: the built-in pack embedded in the binary, then each
//! `--rules DIR` in order. A later rule with an id already loaded replaces
//! the earlier one (so `enabled: false` in a user file disables a built-in
//! rule). Every problem is reported with its file, line and column.

pub mod compile;
pub mod duration;
pub mod gate;
pub mod model;
pub mod testing;

use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::{CompiledRule, RuleError, RuleIdx, RuleSet};
pub use model::RuleSpec;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary (file name under `rules/`).
    Builtin(String),
    /// A user file.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(name) => write!(f, "builtin:rules/{name}"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A rule spec with its origin.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub spec: RuleSpec,
    pub origin: Origin,
}

/// One problem in one rule file, with a 1-based position when known
/// (line 0: none, as for a file or directory that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `origin:0:0:` would point at no line at all.
        if self.line == 0 {
            return write!(f, "{}: {}", self.origin, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )
    }
}

impl From<Vec<RuleProblem>> for crate::error::Error {
    /// All problems, one `file:line:column: message` per line.
    fn from(problems: Vec<RuleProblem>) -> Self {
        crate::error::Error::Rules(
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

/// Parses and compiles one rule file's text. On failure, every problem found.
pub fn parse_rule_text(origin: &str, text: &str) -> Result<RuleSpec, Vec<RuleProblem>> {
    let spec: RuleSpec = match serde_yaml_ng::from_str(text) {
        Ok(spec) => spec,
        Err(error) => {
            let (line, column) = error
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            return Err(vec![RuleProblem {
                origin: origin.to_string(),
                line,
                column,
                message: crate::config::yaml_message(&error),
            }]);
        }
    };
    let mut plans = crate::fields::FieldPlans::default();
    match CompiledRule::compile(&spec, &mut plans) {
        Ok(_) => Ok(spec),
        Err(error) => Err(vec![locate_problem(origin, text, &error)]),
    }
}

/// Maps a compile error to a position in the rule file's text.
fn locate_problem(origin: &str, text: &str, error: &RuleError) -> RuleProblem {
    let key = match error {
        RuleError::Id(_) => "id",
        RuleError::Filter { .. } => "filter",
        RuleError::Field(_) => "group_by",
        RuleError::Threshold(_) => "threshold",
        RuleError::Window(_) => "window",
        RuleError::Evaluation(_) => "evaluation",
    };
    let (mut line, mut column) = (1, 1);
    for (index, raw_line) in text.lines().enumerate() {
        let trimmed = raw_line.trim_start();
        if trimmed.starts_with(&format!("{key}:")) {
            line = index + 1;
            let indent = raw_line.len() - trimmed.len();
            let after_key = &trimmed[key.len() + 1..];
            let value_start = after_key.len() - after_key.trim_start().len();
            column = indent + key.len() + 2 + value_start;
            if let RuleError::Filter {
                column: filter_column,
                ..
            } = error
            {
                let quoted = after_key.trim_start().starts_with(['\'', '"']);
                column += filter_column + usize::from(quoted) - 1;
            }
            break;
        }
    }
    RuleProblem {
        origin: origin.to_string(),
        line,
        column,
        message: error.to_string(),
    }
}

/// The built-in pack, parsed. Built-in rules are tested in CI, so a
/// failure here is an internal error.
pub fn builtin_rules() -> Result<Vec<LoadedRule>, Vec<RuleProblem>> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in builtin::BUILTIN_RULES {
        match parse_rule_text(&format!("builtin:rules/{name}"), text) {
            Ok(spec) => loaded.push(LoadedRule {
                spec,
                origin: Origin::Builtin(name.to_string()),
            }),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

/// Rule files (`*.yaml`, `*.yml`) under `dir`, recursively, sorted.
pub(crate) fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, RuleProblem> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| RuleProblem {
            origin: current.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read rules directory: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            // Symlinks are not followed: a rule directory cannot pull in
            // files from elsewhere on the host.
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                pending.push(path);
            } else if file_type.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every rule file under `dir`, collecting all problems.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedRule>, Vec<RuleProblem>> {
    let files = rule_files(dir).map_err(|p| vec![p])?;
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(RuleProblem {
                    origin,
                    line: 0,
                    column: 0,
                    message: format!("cannot read rule file: {e}"),
                });
                continue;
            }
        };
        match parse_rule_text(&origin, &text) {
            Ok(spec) => loaded.push(LoadedRule {
                spec,
                origin: Origin::File(path),
            }),
            Err(mut p) => problems.append(&mut p),
        }
    }
    let mut seen = std::collections::HashMap::new();
    for rule in &loaded {
        if let Some(previous) = seen.insert(rule.spec.id.clone(), rule.origin.to_string()) {
            problems.push(RuleProblem {
                origin: rule.origin.to_string(),
                line: 1,
                column: 1,
                message: format!("duplicate rule id {:?} (also in {previous})", rule.spec.id),
            });
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

/// Merges `overrides` into `base`: same id replaces, new ids append.
pub fn merge(base: &mut Vec<LoadedRule>, overrides: Vec<LoadedRule>) {
    for rule in overrides {
        match base.iter_mut().find(|r| r.spec.id == rule.spec.id) {
            Some(slot) => *slot = rule,
            None => base.push(rule),
        }
    }
}

/// Loads the built-in pack (unless `no_builtin`) plus every `dirs` entry.
pub fn load_all(dirs: &[PathBuf], no_builtin: bool) -> Result<Vec<LoadedRule>, Vec<RuleProblem>> {
    let mut rules = if no_builtin {
        Vec::new()
    } else {
        builtin_rules()?
    };
    for dir in dirs {
        merge(&mut rules, load_dir(dir)?);
    }
    Ok(rules)
}

/// Compiles loaded rules into a [`RuleSet`].
pub fn compile_all(rules: &[LoadedRule]) -> Result<RuleSet, RuleProblem> {
    let specs: Vec<RuleSpec> = rules.iter().map(|r| r.spec.clone()).collect();
    RuleSet::compile(&specs).map_err(|(id, error)| {
        let origin = rules
            .iter()
            .find(|r| r.spec.id == id)
            .map(|r| r.origin.to_string())
            .unwrap_or(id);
        RuleProblem {
            origin,
            line: 1,
            column: 1,
            message: error.to_string(),
        }
    })
}
