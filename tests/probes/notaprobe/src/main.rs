//! A WASI command: a valid component, but of the `wasi:cli/command` world.
fn main() {
    println!("I am not a probe");
}
