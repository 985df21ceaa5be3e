//! What the generated types forbid (trybuild compile-fail cases in
//! `tests/compile_fail/`): a wrong argument type, a missing required argument, using a
//! reply as the wrong type, and a `match` arm naming an event that does not exist.
#[test]
fn compile_fail() {
    trybuild::TestCases::new().compile_fail("tests/compile_fail/*.rs");
}
