//! The `trailwatch` binary: parses the command line and runs it.

use clap::Parser;

fn main() {
    let cli = trailwatch::cli::Cli::parse();
    std::process::exit(trailwatch::cli::main_with(cli));
}
