//! The examples (examples/) run as a user runs them, against real QEMU 10.0: each that
//! needs QEMU gets the QMP socket of a fresh `qemu-system-x86_64 -M none` or
//! `qemu-storage-daemon` (`qmp::local`) as its argument; its output is checked, and so
//! is the state it leaves QEMU in, through a connection of the test's own.
//! `test_server` needs no QEMU.
//!
//! Cargo builds no example for an integration test (`CARGO_BIN_EXE_*` is for
//! binaries), so the first test to need one runs `cargo build --examples` with the
//! features this test was built with (a no-op when `cargo test --all-targets` has just
//! built them) and takes the paths from cargo's JSON messages.
//!
//! Run with `cargo test -p qemu-qapi --all-features --test examples`.
#![cfg(feature = "server")]

#[path = "support/skip.rs"]
mod skip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use qemu_qapi::commands;
use qemu_qapi::qmp::blocking::Client;
use qemu_qapi::qmp::local::{self, LocalQemu};
use qemu_qapi::types::RunState;

/// How long an example may run: they take well under a second, except under a loaded
/// machine's first build.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The features of this build, passed on to `cargo build --examples` so that it reuses
/// what `cargo test` built (other features would build the crate again, beside it).
fn features() -> Vec<&'static str> {
    let known = [
        ("server", cfg!(feature = "server")),
        ("local", cfg!(feature = "local")),
        ("qga", cfg!(feature = "qga")),
        ("cli", cfg!(feature = "cli")),
        ("schema", cfg!(feature = "schema")),
        ("check-arguments", cfg!(feature = "check-arguments")),
        ("format", cfg!(feature = "format")),
    ];
    // A feature added to Cargo.toml and missing here would be left out silently.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("reading Cargo.toml");
    let declared: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[features]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| !name.starts_with('#'))
        .collect();
    for name in &declared {
        assert!(
            known.iter().any(|(k, _)| k == name),
            "Cargo.toml declares feature `{name}`: add it to tests/examples.rs's features()"
        );
    }
    known
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

/// Every example's executable, built once per test run.
fn examples() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<Result<HashMap<String, PathBuf>, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--examples",
                "--message-format=json-render-diagnostics",
            ])
            .args(["--features", &features().join(",")])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running cargo build --examples: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build --examples failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut found = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_example = msg["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
            if let (true, Some(name), Some(exe)) = (
                is_example,
                msg["target"]["name"].as_str(),
                msg["executable"].as_str(),
            ) {
                found.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
        Ok(found)
    });
    built.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs example `name` with `args`, killing it after [`RUN_LIMIT`].
fn run(name: &str, args: &[&Path]) -> Output {
    let exe = examples()
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no example named {name}"));
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let start = Instant::now();
    while child.try_wait().expect("waiting for the example").is_none() {
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reaping the example");
            panic!(
                "example {name} still running after {RUN_LIMIT:?}; its output:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("reading the example's output")
}

/// Runs example `name`, which must succeed, and returns its standard output.
fn stdout_of(name: &str, args: &[&Path]) -> String {
    let out = run(name, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh QEMU of `program` (`qemu-system-x86_64` or `qemu-storage-daemon`) with its
/// socket up, or `None` (after a skip line) when it is not installed.
fn qemu(program: &str) -> Option<LocalQemu> {
    if !local::installed(program) {
        skip::skipping(&format!("{program} is not installed (scripts/setup-qemu)"));
        return None;
    }
    let mut qemu = match program {
        "qemu-storage-daemon" => LocalQemu::storage_daemon(),
        _ => LocalQemu::system_none(),
    }
    .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    qemu.wait_for_socket(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{program}'s QMP socket: {e}"));
    Some(qemu)
}

/// The test's own connection to `qemu`, made after the example has gone (QEMU serves
/// one client per monitor).
fn connect(qemu: &LocalQemu) -> Client {
    Client::connect(qemu.socket()).expect("connecting to QEMU after the example")
}

/// Asserts that `text` has `lines` in that order (other lines may come between).
fn assert_in_order(text: &str, lines: &[&str]) {
    let mut rest = text.lines();
    for want in lines {
        assert!(
            rest.any(|line| line.contains(want)),
            "expected a line with {want:?} (after the ones before it) in:\n{text}"
        );
    }
}

#[test]
fn examples_needing_qemu_print_usage_without_a_socket() {
    for name in [
        "typed_call",
        "events",
        "job_error",
        "fd_passing",
        "blocking",
    ] {
        let out = run(name, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("usage: {name} QMP-SOCKET")),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn typed_call_prints_the_version_and_the_refusal_qemu_sent() {
    let Some(qemu) = qemu("qemu-system-x86_64") else {
        return;
    };
    let out = stdout_of("typed_call", &[qemu.socket()]);
    let version = connect(&qemu).execute(&commands::QueryVersion {}).unwrap();
    let v = &version.qemu;
    assert_in_order(
        &out,
        &[
            &format!("QEMU {}.{}.{}", v.major, v.minor, v.micro),
            "status: Running, running: true",
            "QEMU refused block_resize: GenericError",
            "desc: Cannot find device='' nor node-name='no-such-node'",
        ],
    );
}

#[test]
fn events_sees_stop_then_resume_and_leaves_the_vm_running() {
    let Some(qemu) = qemu("qemu-system-x86_64") else {
        return;
    };
    let out = stdout_of("events", &[qemu.socket()]);
    assert_in_order(&out, &["stopped", "event STOP at ", "event RESUME at "]);
    // QEMU's timestamps: of this run (the clock QEMU reads is the host's), in order.
    let at = |name: &str| -> f64 {
        let prefix = format!("event {name} at ");
        let line = out.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap();
        line.parse()
            .unwrap_or_else(|e| panic!("{name}'s timestamp {line:?}: {e}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (stop, resume) = (at("STOP"), at("RESUME"));
    assert!(stop <= resume, "STOP at {stop} after RESUME at {resume}");
    assert!((now - stop).abs() < 600.0, "STOP at {stop}, now is {now}");
    let status = connect(&qemu).execute(&commands::QueryStatus {}).unwrap();
    assert_eq!(status.status, RunState::Running);
}

#[test]
fn job_error_prints_the_failed_jobs_error_and_dismisses_it() {
    let Some(qemu) = qemu("qemu-storage-daemon") else {
        return;
    };
    let out = stdout_of("job_error", &[qemu.socket()]);
    assert_in_order(
        &out,
        &[
            "job `create-example` (create) failed: Could not create '/nonexistent-",
            "QEMU's error: Could not create '/nonexistent-",
            "dismissed",
        ],
    );
    assert!(out.contains("No such file or directory"), "{out}");
    let jobs = connect(&qemu).execute(&commands::QueryJobs {}).unwrap();
    assert!(jobs.is_empty(), "the job was not dismissed: {jobs:?}");
}

#[test]
fn fd_passing_opens_a_node_on_a_passed_fd_and_cleans_up() {
    let Some(qemu) = qemu("qemu-system-x86_64") else {
        return;
    };
    let out = stdout_of("fd_passing", &[qemu.socket()]);
    assert_in_order(
        &out,
        &[
            "add-fd: fd set ",
            "node fd-disk: 1048576 bytes from /dev/fdset/",
            "getfd: QEMU holds fd example-fd",
            "closefd: released",
        ],
    );
    let client = connect(&qemu);
    let nodes = client
        .execute(&commands::QueryNamedBlockNodes::new())
        .unwrap();
    assert!(nodes.is_empty(), "nodes left behind: {nodes:?}");
    let fdsets = client.execute(&commands::QueryFdsets {}).unwrap();
    assert!(fdsets.is_empty(), "fd sets left behind: {fdsets:?}");
}

#[test]
fn blocking_stops_and_resumes_the_vm() {
    let Some(qemu) = qemu("qemu-system-x86_64") else {
        return;
    };
    let out = stdout_of("blocking", &[qemu.socket()]);
    assert_in_order(&out, &["QEMU 10.", "stopped", "resumed"]);
    let status = connect(&qemu).execute(&commands::QueryStatus {}).unwrap();
    assert_eq!(status.status, RunState::Running);
}

#[test]
fn test_server_passes_each_of_its_cases_without_qemu() {
    let out = stdout_of("test_server", &[]);
    let cases: Vec<&str> = out.lines().collect();
    assert_eq!(cases.len(), 4, "{out}");
    for case in cases {
        assert!(case.starts_with("ok "), "{out}");
    }
    assert!(
        out.contains("stop refused: error: QMP error from `stop`"),
        "{out}"
    );
    assert!(out.contains("slow QEMU: error: "), "{out}");
}

/// The first code block of `text` that opens with `opening`, without the fences.
fn first_block(text: &str, opening: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim_end() != opening);
    assert!(lines.next().is_some(), "no {opening} block");
    lines
        .take_while(|l| l.trim_end() != "```")
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn readme_quick_start_is_the_crate_docs_quick_start() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    // The crate docs' copy is a doctest (compiled by `cargo test --doc`), so the
    // README's compiles too when they are equal.
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    assert_eq!(
        first_block(&readme, "```rust"),
        first_block(&docs, "```no_run"),
        "README.md's quick start and src/lib.rs's differ"
    );
}
