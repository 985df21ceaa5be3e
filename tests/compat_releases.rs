//! `qmp compat` and `qmp call` against QEMU 10.0 (installed) and QEMU 7.2 (unpacked
//! by `scripts/setup-old-qemu` into `target/old-qemu/7.2`, see `qmp::local::OldQemu`),
//! with the `qmp` program of this package (QEMU 10.0's bindings):
//!
//! * `compat` names the differences `qapi-codegen diff schema/qemu-system-7.2.json
//!   schema/qemu-system-10.0.json` predicts (7.2 lacks `blockdev-set-active`, has
//!   `x-query-rdma`, and `query-block`'s reply lacks the `active` member 10.0's
//!   bindings require), and against 10.0 only what its x86 build leaves out;
//! * `compat --require` exits with 4 exactly when a required command is not fully
//!   supported, on both releases;
//! * `compat` asks for the peer's schema once, through the client
//!   (`Client::peer_schema`, the copy `supports` and `call`'s check use);
//! * `call` of a command only 7.2 has works against 7.2 without `--no-check`, and one
//!   only 10.0 has is refused against 7.2, naming the command and the peer's version,
//!   with nothing sent (the session's transcript shows no such request).
//!
//! Each QEMU is `qemu-system-x86_64 -M none`. Without the installed QEMU or
//! `target/old-qemu/7.2`, the tests for it print one line and pass; `scripts/test`
//! sets both up.

#[path = "support/skip.rs"]
mod skip;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use qmp::local::{LocalQemu, OldQemu, System};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

/// QEMU 10.0, or `None` (with a line saying why) when it is not installed.
fn qemu_10() -> Option<LocalQemu> {
    if !qmp::local::installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed (scripts/setup-qemu)");
        return None;
    }
    Some(start(&System::new("none")))
}

/// QEMU 7.2, or `None` (with a line saying why) when it is not unpacked.
fn qemu_72() -> Option<LocalQemu> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/old-qemu/7.2");
    match OldQemu::open(&dir) {
        Ok(old) => Some(start(&System::new("none").release(&old))),
        Err(e) => {
            skip::skipping(&format!(
                "QEMU 7.2 is not unpacked ({e}); run scripts/setup-old-qemu"
            ));
            None
        }
    }
}

fn start(system: &System) -> LocalQemu {
    let mut qemu = LocalQemu::system(system).unwrap_or_else(|e| panic!("starting QEMU: {e}"));
    qemu.wait_for_socket(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("QEMU: {e}"));
    qemu
}

fn qmp(qemu: &LocalQemu, args: &[&str]) -> Output {
    let socket = qemu.socket().to_str().expect("UTF-8 socket path");
    Command::new(QMP)
        .args(["--socket", socket])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running qmp")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `qmp compat` and returns its report, checking it succeeded.
fn compat(qemu: &LocalQemu) -> String {
    let out = qmp(qemu, &["compat"]);
    assert!(out.status.success(), "qmp compat: {out:?}");
    text(&out.stdout)
}

/// Runs `qmp compat --require <commands>`: exit status, stdout, stderr.
fn require(qemu: &LocalQemu, commands: &str) -> (Option<i32>, String, String) {
    let out = qmp(qemu, &["compat", "--require", commands]);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn assert_lines(report: &str, present: &[&str], absent: &[&str]) {
    let lines: Vec<&str> = report.lines().collect();
    for want in present {
        assert!(lines.contains(want), "no line {want:?} in:\n{report}");
    }
    for unwanted in absent {
        assert!(
            !lines.iter().any(|l| l.starts_with(unwanted)),
            "a line {unwanted:?} in:\n{report}"
        );
    }
}

#[test]
fn compat_against_qemu_10_lists_only_what_the_build_leaves_out() {
    let Some(qemu) = qemu_10() else { return };
    let report = compat(&qemu);
    assert!(
        report
            .starts_with("qmp compat: the bindings this program was built with against QEMU 10.0."),
        "{report}"
    );
    assert_lines(
        &report,
        &[
            "- command dump-skeys: only in the bindings (if TARGET_S390X)",
            "- command blockdev-add branch io_uring: only in the bindings (if CONFIG_BLKIO)",
        ],
        &[
            "+ ",
            "- command blockdev-set-active",
            "- command query-block ",
        ],
    );
    // Every command this release has that the bindings list unconditionally.
    let summary = report.lines().last().unwrap_or_default();
    assert!(
        summary.contains("commands only in the bindings (")
            && summary.contains("0 only in the peer"),
        "{summary}"
    );
    let under_condition = report
        .lines()
        .filter(|l| {
            l.starts_with("- command ") && !l.contains(" member ") && !l.contains(" branch ")
        })
        .all(|l| l.contains("(if "));
    assert!(under_condition, "{report}");
}

#[test]
fn compat_against_qemu_7_2_names_the_release_differences() {
    let Some(qemu) = qemu_72() else { return };
    let report = compat(&qemu);
    assert!(
        report
            .starts_with("qmp compat: the bindings this program was built with against QEMU 7.2."),
        "{report}"
    );
    assert_lines(
        &report,
        &[
            "- command blockdev-set-active: only in the bindings",
            "- command query-audiodevs: only in the bindings",
            "+ command x-query-rdma: only in the peer",
            "- command query-block reply[] member inserted member active: only in the bindings, \
             required (breaks the reply)",
            "- command query-dirty-rate reply member calc-time-unit: only in the bindings, \
             required (breaks the reply)",
            "+ command query-status reply member singlestep: only in the peer, required",
            "- command blockdev-add member active: only in the bindings, optional (breaks calls)",
            "- event VFIO_MIGRATION: only in the bindings",
            "+ event RDMA_GID_STATUS_CHANGED: only in the peer",
        ],
        &["- command query-jobs", "- command query-version"],
    );
}

#[test]
fn compat_require_exits_with_4_exactly_when_a_command_is_not_fully_supported_on_10_0() {
    let Some(qemu) = qemu_10() else { return };
    let (code, out, err) = require(&qemu, "query-jobs,query-version,blockdev-set-active");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("\nquery-jobs: fully supported\n"), "{out}");
    assert!(
        out.contains("\nblockdev-set-active: fully supported\n"),
        "{out}"
    );
    // dump-skeys is s390x's: the bindings have it, this x86 build does not.
    let (code, out, err) = require(&qemu, "query-jobs,dump-skeys");
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(
        out.contains(
            "\ndump-skeys: the peer does not have it (the bindings have it only if TARGET_S390X)\n"
        ),
        "{out}"
    );
    assert!(
        err.contains("QEMU 10.0.")
            && err.contains("does not fully support dump-skeys (of the 2 required)"),
        "{err}"
    );
}

#[test]
fn compat_require_exits_with_4_exactly_when_a_command_is_not_fully_supported_on_7_2() {
    let Some(qemu) = qemu_72() else { return };
    let (code, out, err) = require(&qemu, "query-jobs,query-version,query-status");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("\nquery-status: fully supported\n"), "{out}");
    let (code, out, err) = require(&qemu, "query-jobs,blockdev-set-active,query-block");
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("\nquery-jobs: fully supported\n"), "{out}");
    assert!(
        out.contains("\nblockdev-set-active: the peer does not have it\n"),
        "{out}"
    );
    assert!(
        out.contains("\nquery-block: not fully supported (")
            && out.contains(
                "\n  - command query-block reply[] member inserted member active: only in the \
                 bindings, required (breaks the reply)\n"
            ),
        "{out}"
    );
    assert!(
        err.contains("QEMU 7.2.")
            && err.contains(
                "does not fully support blockdev-set-active, query-block (of the 3 required)"
            ),
        "{err}"
    );
}

/// The requests of a `--record` transcript, by command name.
fn sent(transcript: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(transcript)
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|e| e["dir"] == "c2s")
        .filter_map(|e| e["msg"]["execute"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn compat_asks_for_the_schema_once_through_the_client() {
    let Some(qemu) = qemu_10() else { return };
    // `compat` takes the schema the client keeps for the connection
    // (`Client::peer_schema`): one `query-qmp-schema`, and nothing else.
    let dir = tempfile::tempdir().expect("temporary directory");
    let transcript = dir.path().join("session.jsonl");
    let t = transcript.to_str().expect("UTF-8 path");
    let out = qmp(
        &qemu,
        &["--record", t, "compat", "--require", "query-status"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stdout).contains("query-status: fully supported"),
        "{out:?}"
    );
    assert_eq!(sent(&transcript), ["qmp_capabilities", "query-qmp-schema"]);
}

#[test]
fn call_checks_against_the_peer_not_the_bindings() {
    let Some(qemu) = qemu_72() else { return };
    // Only QEMU 7.2 has x-query-rdma (10.0 removed it; the bindings lack it): it is
    // sent and its reply printed, without --no-check.
    let out = qmp(&qemu, &["call", "x-query-rdma"]);
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON reply");
    assert!(reply.get("human-readable-text").is_some(), "{reply}");

    // Only QEMU 10.0 has query-audiodevs: refused, naming the command and the peer's
    // version, and never sent (the transcript of the session shows no such request).
    let dir = tempfile::tempdir().expect("temporary directory");
    let transcript = dir.path().join("session.jsonl");
    let t = transcript.to_str().expect("UTF-8 path");
    let out = qmp(&qemu, &["--record", t, "call", "query-audiodevs"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("QEMU 7.2.") && err.contains("has no command `query-audiodevs`"),
        "{err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    let sent: Vec<String> = std::fs::read_to_string(&transcript)
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|e| e["dir"] == "c2s")
        .filter_map(|e| e["msg"]["execute"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sent, ["qmp_capabilities", "query-qmp-schema"]);

    // A member only 10.0 has: refused with QEMU's own words.
    let out = qmp(
        &qemu,
        &[
            "call",
            "blockdev-add",
            r#"{"driver": "null-co", "node-name": "n0", "active": true}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "would refuse the arguments of `blockdev-add`: Parameter 'active' is unexpected"
        ),
        "{err}"
    );
    // The same without it is accepted by 7.2.
    let out = qmp(
        &qemu,
        &[
            "call",
            "blockdev-add",
            r#"{"driver": "null-co", "node-name": "n0"}"#,
        ],
    );
    assert!(out.status.success(), "{out:?}");
}
