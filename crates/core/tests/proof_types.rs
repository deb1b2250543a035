//! The proof types cannot be made or bent outside core: each case under
//! `compile_fail/` must fail to compile, with the error in its `.stderr`.

#[test]
fn grants_and_decisions_cannot_be_forged() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
