//! The `qapi-codegen` command-line tool.
fn main() {}
