//! Embeds every `rules/*.yaml` file into the binary as the built-in pack.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let rules_dir = Path::new("rules");
    println!("cargo:rerun-if-changed=rules");
    let mut names: Vec<String> = std::fs::read_dir(rules_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut code = String::from("/// (file name, contents) of each built-in rule.\npub static BUILTIN_RULES: &[(&str, &str)] = &[\n");
    for name in &names {
        println!("cargo:rerun-if-changed=rules/{name}");
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/rules/{name}\"))),"
        );
    }
    code.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_string());
    let target = Path::new(&out_dir).join("builtin_rules.rs");
    if let Err(error) = std::fs::write(&target, code) {
        panic!("cannot write {}: {error}", target.display());
    }
}
