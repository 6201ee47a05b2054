//! `trailwatch rules list | check DIR | test [DIR]`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::rules::{self, LoadedRule};

use super::RuleArgs;

/// Rule subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show the loaded rules (built-in pack plus `--rules` directories).
    List {
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Validate every rule file under DIR; report each error as
    /// `file:line:column: message`.
    Check {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run each rule's inline tests (built-in pack and `--rules`
    /// directories, or only DIR when given).
    Test {
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        rules: RuleArgs,
        /// Only rules whose id contains this text.
        #[arg(long)]
        only: Option<String>,
    },
}

/// Runs a rules subcommand.
pub fn execute(cmd: RulesCommand) -> Result<i32> {
    match cmd {
        RulesCommand::List { rules } => list(&rules),
        RulesCommand::Check { dir } => check(&dir),
        RulesCommand::Test { dir, rules, only } => test(dir, &rules, only.as_deref()),
    }
}

fn load(args: &RuleArgs) -> Result<Vec<LoadedRule>> {
    rules::load_all(&args.rules, args.no_builtin).map_err(Error::from)
}

fn list(args: &RuleArgs) -> Result<i32> {
    let loaded = load(args)?;
    outln!(
        "{:<40} {:<10} {:<7} {:<18} {:<8} {:<8} {:<30} origin",
        "id",
        "kind",
        "window",
        "aggregate",
        "thresh",
        "enabled",
        "group_by"
    )?;
    for rule in &loaded {
        let spec = &rule.spec;
        let aggregate = match &spec.aggregate {
            rules::model::AggregateSpec::Stat(stat) => format!("{stat:?}").to_lowercase(),
            rules::model::AggregateSpec::Field(f) => format!("{f:?}").to_lowercase(),
        };
        let threshold = match &spec.threshold {
            rules::model::ThresholdSpec::Text(t) => t.clone(),
            rules::model::ThresholdSpec::Parts { op, value } => format!("{op} {value}"),
        };
        outln!(
            "{:<40} {:<10} {:<7} {:<18} {:<8} {:<8} {:<30} {}",
            spec.id,
            crate::event::EventKind::from(spec.kind).as_str(),
            spec.window.to_string(),
            aggregate,
            threshold,
            spec.enabled,
            spec.group_by.join(","),
            rule.origin
        )?;
    }
    Ok(0)
}

fn check(dir: &std::path::Path) -> Result<i32> {
    match rules::load_dir(dir) {
        Ok(loaded) => {
            let set = rules::compile_all(&loaded).map_err(|p| Error::Rules(p.to_string()))?;
            outln!(
                "{}: {} rule file(s) ok, {} enabled",
                dir.display(),
                loaded.len(),
                set.len()
            )?;
            Ok(0)
        }
        Err(problems) => {
            for problem in &problems {
                errln!("{problem}");
            }
            errln!("{} problem(s) found", problems.len());
            Ok(3)
        }
    }
}

fn test(dir: Option<PathBuf>, args: &RuleArgs, only: Option<&str>) -> Result<i32> {
    let loaded = match dir {
        Some(dir) => rules::load_dir(&dir).map_err(Error::from)?,
        None => load(args)?,
    };
    let (mut passed, mut failed, mut untested) = (0, 0, Vec::new());
    for rule in loaded
        .iter()
        .filter(|r| only.is_none_or(|o| r.spec.id.contains(o)))
    {
        if rule.spec.tests.is_empty() {
            untested.push(rule.spec.id.clone());
            continue;
        }
        for result in rules::testing::run_tests(&rule.spec) {
            match &result.failure {
                None => {
                    passed += 1;
                    outln!("ok    {} :: {}", result.rule_id, result.case)?;
                }
                Some(why) => {
                    failed += 1;
                    outln!("FAIL  {} :: {}\n      {why}", result.rule_id, result.case)?;
                }
            }
        }
    }
    for id in &untested {
        outln!("warn  {id} has no inline tests")?;
    }
    outln!("rule tests: {passed} passed, {failed} failed")?;
    Ok(if failed == 0 { 0 } else { 1 })
}
