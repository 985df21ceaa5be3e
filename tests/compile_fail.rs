//! What the generated types forbid (trybuild compile-fail cases in
//! `tests/compile_fail/`): a wrong argument type, a missing required argument, using a
//! reply as the wrong type, a `match` arm naming an event that does not exist, and
//! `Default` for a command with required arguments or `From` a branch's value for a
//! union with other required members.
#[test]
fn compile_fail() {
    trybuild::TestCases::new().compile_fail("tests/compile_fail/*.rs");
}
