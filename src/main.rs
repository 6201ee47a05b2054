//! The `trailwatch` binary: parses the command line and runs it.

use clap::Parser;

fn main() {
    // A panicking thread must not let its dropped work count as done.
    trailwatch::engine::commit::freeze_on_panic();
    let cli = trailwatch::cli::Cli::parse();
    std::process::exit(trailwatch::cli::main_with(cli));
}
