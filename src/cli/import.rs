//! `trailwatch import cloudformation | cli | terraform`: converts existing
//! CloudWatch metric filters and alarms into rule files plus
//! `IMPORT_REPORT.md` (see [`crate::import`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::import::{self, ImportOptions, ImportSet};
use crate::rules::model::KindSpec;

/// Import sources.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A CloudFormation template (JSON or YAML, short-form tags included).
    Cloudformation {
        #[arg(value_name = "TEMPLATE")]
        template: PathBuf,
        /// Template parameter value `K=V` (repeatable); defaults otherwise.
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// `aws logs describe-metric-filters` and `aws cloudwatch
    /// describe-alarms` JSON output.
    Cli {
        #[arg(long, value_name = "FILE")]
        metric_filters: PathBuf,
        #[arg(long, value_name = "FILE")]
        alarms: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Terraform: a module directory or `.tf` file (HCL, evaluated
    /// statically), or JSON from `terraform show -json` (plan or state) or a
    /// `terraform.tfstate`.
    Terraform {
        #[arg(value_name = "PATH")]
        file: PathBuf,
        /// Terraform variable value `NAME=VALUE` for HCL input (repeatable);
        /// wins over tfvars files and defaults.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Flags shared by every import source.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Directory to write the rule files and IMPORT_REPORT.md into.
    #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
    pub out: Option<PathBuf>,
    /// Print what would be imported (CloudWatch → rule table); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite rule files (and IMPORT_REPORT.md) already in --out.
    #[arg(long)]
    pub force: bool,
    /// Rule kind for every imported rule instead of guessing it from the
    /// pattern: cloudtrail, vpcflow or hostlog.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<KindSpec>,
    /// Evaluate tumbling periods only (no `slide: 1m`).
    #[arg(long)]
    pub no_slide: bool,
}

fn parse_kind(text: &str) -> std::result::Result<KindSpec, String> {
    match text {
        "cloudtrail" => Ok(KindSpec::Cloudtrail),
        "vpcflow" => Ok(KindSpec::Vpcflow),
        "hostlog" => Ok(KindSpec::Hostlog),
        other => Err(format!(
            "unknown kind {other:?}: use cloudtrail, vpcflow or hostlog"
        )),
    }
}

/// Reads an input file as UTF-8 text, without a byte order mark (Windows
/// editors write one, and the parsers took it for the first character). A
/// UTF-16 file (what PowerShell 5's `aws ... > file.json` writes) or other
/// non-UTF-8 bytes are a usage error naming the fix, not an I/O error.
fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Error::Config(format!(
            "{}: the file is UTF-16; save it as UTF-8 (PowerShell: `... | Out-File -Encoding utf8`)",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Config(format!(
            "{}: not UTF-8 text ({e}); save it as UTF-8",
            path.display()
        ))
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| Error::Config(format!("{}: not valid JSON: {e}", path.display())))
}

/// Reads the source into an [`ImportSet`] (no conversion yet).
pub fn load(cmd: &ImportCommand) -> Result<(ImportSet, String, &CommonArgs, &'static str)> {
    match cmd {
        ImportCommand::Cloudformation {
            template,
            params,
            common,
        } => {
            let mut overrides = BTreeMap::new();
            for param in params {
                let (k, v) = param
                    .split_once('=')
                    .ok_or_else(|| Error::Config(format!("--param {param:?}: expected K=V")))?;
                overrides.insert(k.trim().to_string(), v.to_string());
            }
            let doc = import::cloudformation::parse_template(&read(template)?)?;
            let file = display_name(template);
            let set = import::cloudformation::import(&doc, &overrides, &file)?;
            Ok((
                set,
                format!("CloudFormation template {}", template.display()),
                common,
                "cloudformation",
            ))
        }
        ImportCommand::Cli {
            metric_filters,
            alarms,
            common,
        } => {
            let filters = read_json(metric_filters)?;
            let alarm_doc = match alarms {
                Some(path) => read_json(path)?,
                None => serde_json::Value::Null,
            };
            let alarm_file = alarms.as_deref().map(display_name).unwrap_or_default();
            let set = import::cli_json::import(
                &filters,
                &alarm_doc,
                (&display_name(metric_filters), &alarm_file),
            )?;
            Ok((
                set,
                format!(
                    "AWS CLI output {} + {}",
                    metric_filters.display(),
                    alarm_file
                ),
                common,
                "aws-cli",
            ))
        }
        ImportCommand::Terraform { file, vars, common } => {
            let mut overrides = BTreeMap::new();
            for var in vars {
                let (k, v) = var
                    .split_once('=')
                    .ok_or_else(|| Error::Config(format!("--var {var:?}: expected NAME=VALUE")))?;
                overrides.insert(k.trim().to_string(), import::hcl::var_value(v));
            }
            if file.is_dir() {
                let (files, tfvars) = read_module(file)?;
                let set = import::hcl::import(&files, &tfvars, &overrides)?;
                return Ok((
                    set,
                    format!("Terraform module {}", file.display()),
                    common,
                    "terraform",
                ));
            }
            let text = read(file)?;
            if !text.trim_start().starts_with('{') {
                let files = [import::hcl::SourceFile {
                    name: display_name(file),
                    text,
                }];
                let set = import::hcl::import(&files, &[], &overrides)?;
                return Ok((
                    set,
                    format!("Terraform HCL {}", file.display()),
                    common,
                    "terraform",
                ));
            }
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: not valid JSON: {e}", file.display())))?;
            let set = import::terraform::import(&doc, &display_name(file))?;
            Ok((
                set,
                format!("Terraform JSON {}", file.display()),
                common,
                "terraform",
            ))
        }
    }
}

/// The `*.tf` files of a module directory (sorted by name) and its
/// `terraform.tfvars` / `*.auto.tfvars` files.
fn read_module(dir: &Path) -> Result<(Vec<import::hcl::SourceFile>, Vec<import::hcl::SourceFile>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display().to_string(), e))?;
        paths.push(entry.path());
    }
    paths.sort();
    let (mut files, mut tfvars) = (Vec::new(), Vec::new());
    for path in paths {
        let name = display_name(&path);
        let source = |path: &Path| -> Result<import::hcl::SourceFile> {
            Ok(import::hcl::SourceFile {
                name: name.clone(),
                text: read(path)?,
            })
        };
        if name.ends_with(".tf") {
            files.push(source(&path)?);
        } else if name == "terraform.tfvars" || name.ends_with(".auto.tfvars") {
            tfvars.push(source(&path)?);
        }
    }
    if files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no .tf files in the directory",
            dir.display()
        )));
    }
    Ok((files, tfvars))
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Runs an import subcommand.
pub fn execute(cmd: ImportCommand) -> Result<i32> {
    let (set, input, common, format) = load(&cmd)?;
    let options = ImportOptions {
        kind: common.kind,
        slide: !common.no_slide,
        format: format.to_string(),
    };
    let report = import::convert(set, &options, &input);
    if common.dry_run {
        out!("{}", import::render_dry_run(&report))?;
        out!("{}", import::render_summary(&report))?;
        return Ok(0);
    }
    let Some(out) = &common.out else {
        return Err(Error::Config(
            "--out DIR is required unless --dry-run".to_string(),
        ));
    };
    import::write_out(&report, out, common.force)?;
    out!("{}", import::render_summary(&report))?;
    outln!(
        "wrote {} rule file(s) and IMPORT_REPORT.md to {}",
        report.rules.len(),
        out.display()
    )?;
    Ok(0)
}
