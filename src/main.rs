//! The `trailwatch` command line.

fn main() {
    println!("trailwatch");
}
