//! QEMU's own front-end test suite and root schema dumps, run through `qapi-codegen dump`.
//!
//! Needs `QAPI_CORPUS` (a copy of QEMU 10.0's `tests/qapi-schema/`, `qapi/`, `qga/`,
//! `storage-daemon/qapi/` and `expected/`): skipped with one line when unset, failing
//! when set but incomplete.

use std::path::Path;
use std::process::Command;

#[path = "support/corpus.rs"]
mod corpus_dir;
use corpus_dir::corpus;

/// Run `qapi-codegen dump FILE` in `dir`: (exit success, stdout, stderr).
fn dump(dir: &Path, file: &str) -> (bool, Vec<u8>, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_qapi-codegen"))
        .arg("dump")
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run qapi-codegen in {}: {e}", dir.display()));
    (out.status.success(), out.stdout, out.stderr)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A short line diff of `expected` against `actual` (first differing lines).
fn short_diff(what: &str, expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    let el: Vec<&str> = e.split_inclusive('\n').collect();
    let al: Vec<&str> = a.split_inclusive('\n').collect();
    let first = el.iter().zip(&al).take_while(|(x, y)| x == y).count();
    let mut out = format!("  {what}: first difference at line {}\n", first + 1);
    for l in el.iter().skip(first).take(4) {
        out.push_str(&format!("  -{}", l.trim_end_matches('\n')));
        out.push('\n');
    }
    for l in al.iter().skip(first).take(4) {
        out.push_str(&format!("  +{}", l.trim_end_matches('\n')));
        out.push('\n');
    }
    out
}

#[test]
fn qemu_qapi_schema_cases() {
    let Some(root) = corpus("the QEMU corpus test") else {
        return;
    };
    let dir = root.join("tests/qapi-schema");
    let cases = String::from_utf8(read(&dir.join("CASES"))).expect("CASES is UTF-8");
    let cases: Vec<&str> = cases.split_whitespace().collect();
    assert!(cases.len() >= 200, "CASES lists only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut accepted = 0;
    for case in &cases {
        let name = case.strip_suffix(".json").unwrap_or(case);
        let want_out = read(&dir.join(format!("{name}.out")));
        let want_err = read(&dir.join(format!("{name}.err")));
        let (ok, out, err) = dump(&dir, case);
        let mut report = String::new();
        if out != want_out {
            report += &short_diff("stdout", &want_out, &out);
        }
        if err != want_err {
            report += &short_diff("stderr", &want_err, &err);
        }
        if ok != want_err.is_empty() {
            report += &format!(
                "  exit status: success={ok}, expected {}\n",
                want_err.is_empty()
            );
        }
        if ok {
            accepted += 1;
        }
        if !report.is_empty() {
            failures.push(format!("{name}:\n{report}"));
        }
    }
    println!(
        "{} of {} QEMU cases pass ({accepted} accepted)",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("")
    );
}

#[test]
fn qemu_root_schema_dumps() {
    let Some(root) = corpus("the QEMU corpus test") else {
        return;
    };
    let mut failures = Vec::new();
    for (dir, expected) in [
        ("qapi", "qapi-schema.dump"),
        ("qga", "qga-schema.dump"),
        ("storage-daemon/qapi", "storage-daemon-schema.dump"),
    ] {
        let want = read(&root.join("expected").join(expected));
        let dir = root.join(dir);
        assert!(
            dir.join("qapi-schema.json").is_file(),
            "{} missing",
            dir.display()
        );
        let (ok, out, err) = dump(&dir, "qapi-schema.json");
        if !ok || out != want {
            failures.push(format!(
                "{expected}: success={ok} stderr={}\n{}",
                String::from_utf8_lossy(&err),
                short_diff("stdout", &want, &out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join(""));
}

/// The skip above is one line outside CI, and a failure when `QMP_TESTS_REQUIRE_ALL`
/// is set (`.ci/run`): this binary runs `qemu_root_schema_dumps` again without
/// `QAPI_CORPUS`, both ways.
#[test]
fn a_missing_corpus_fails_when_every_test_is_required() {
    let run = |require: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args(["--exact", "qemu_root_schema_dumps", "--nocapture"])
            .env_remove("QAPI_CORPUS")
            .env_remove("QMP_TESTS_REQUIRE_ALL");
        if let Some(v) = require {
            cmd.env("QMP_TESTS_REQUIRE_ALL", v);
        }
        let out = cmd.output().expect("run the test binary");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(None);
    assert!(
        ok && text.contains("skipping: QAPI_CORPUS is not set"),
        "{text}"
    );
    let (ok, text) = run(Some("0"));
    assert!(ok, "{text}");
    let (ok, text) = run(Some("1"));
    assert!(
        !ok && text.contains("QMP_TESTS_REQUIRE_ALL is set, and this test would skip"),
        "{text}"
    );
}
