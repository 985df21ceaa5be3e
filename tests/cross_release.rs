//! Bindings of one QEMU release against a QEMU of another, live: which replies fail to
//! decode, by command and member.
//!
//! QEMU 10.0 (installed) and QEMU 7.2 (unpacked by `scripts/setup-old-qemu` into
//! `target/old-qemu/7.2`, see `qmp::local::OldQemu`) each run a `pc` machine (TCG,
//! paused) with a qcow2 disk and an e1000 NIC. Every `query-*` command that both
//! releases have and that takes no arguments (or only optional ones), by the two
//! peers' `query-qmp-schema`, is called against each QEMU with the `qmp` program built
//! with each release's bindings, and the reply decoded by it (`qmp call` exits with 3
//! and names the command and member when the reply does not fit):
//!
//! * 10.0 bindings: this package's `qmp` (the default build, `schema/qemu-system-10.0.json`);
//! * 7.2 bindings: the same program built with `QMP_SCHEMA` set to QEMU 7.2's sources
//!   (`target/old-schemas/7.2/qapi/qapi-schema.json`, fetched by
//!   `scripts/fetch-old-schemas`; `schema/qemu-system-7.2.json` when they are absent)
//!   into its own target folder, `target/cross-release` (under `CARGO_TARGET_DIR` when
//!   that is set; kept between runs: a cold build takes about a minute, a warm one a
//!   second).
//!
//! It prints a table per direction and asserts that bindings decode every reply of
//! their own release (a failure there is a bug of ours), and that the failures across
//! releases are exactly [`EXPECTED`]. A command QEMU answers with an error (a feature
//! the machine lacks) is counted as a QEMU error, with its class, not as a failure.
//!
//! [`union_bindings_decode_both_releases`] does the same with bindings built for both
//! releases at once (`QMP_SCHEMA=7.2=<7.2's schema>:10.0=<10.0's snapshot>`, the union
//! of the two, into `target/cross-release-union`): every argument-free `query-*` that
//! each QEMU has decodes, with no failure allowed; and a program written against
//! those bindings (`tests/union-probe/probe.rs`, built in a crate of its own) adds a
//! `null-co` block node with a typed `blockdev-add` and matches `Event::Stop` after
//! `stop`, against both.
//!
//! Without `target/old-qemu/7.2` (run `scripts/setup-old-qemu`) or the installed QEMU,
//! it prints one line and passes; `scripts/test` sets both up.

#[path = "support/skip.rs"]
mod skip;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qmp::local::{LocalQemu, OldQemu, System};
use serde_json::Value;

/// The decode failures across releases, as (bindings, QEMU, command, member path,
/// serde's message): what the bindings of one release cannot read of the other's
/// replies on a `pc` machine with one disk and one NIC. Only the first failing member
/// of each reply shows (decoding stops there). The one place this list is kept (the
/// README's table copies it): a change that makes the bindings tolerate the other
/// release removes entries here; the aim is none. Recorded 2026-12-07, QEMU 10.0.2 and
/// 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3).
const EXPECTED: &[(&str, &str, &str, &str, &str)] = &[
    // QEMU 10.0 added members its bindings require; 7.2 does not send them.
    (
        "10.0",
        "7.2",
        "query-block",
        "return.[0].inserted",
        "missing field `active`",
    ),
    (
        "10.0",
        "7.2",
        "query-blockstats",
        "return.[0].parent.stats",
        "missing field `zone_append_bytes`",
    ),
    (
        "10.0",
        "7.2",
        "query-dirty-rate",
        "return",
        "missing field `calc-time-unit`",
    ),
    (
        "10.0",
        "7.2",
        "query-machines",
        "return.[0]",
        "missing field `acpi`",
    ),
    (
        "10.0",
        "7.2",
        "query-named-block-nodes",
        "return.[0]",
        "missing field `active`",
    ),
    (
        "10.0",
        "7.2",
        "query-sev",
        "return",
        "missing field `sev-type`",
    ),
    // QEMU 10.0 removed a member 7.2's bindings require.
    (
        "7.2",
        "10.0",
        "query-status",
        "return",
        "missing field `singlestep`",
    ),
];

/// QEMU 7.2's sources, as `scripts/fetch-old-schemas` leaves them.
const SOURCES_72: &str = "target/old-schemas/7.2/qapi/qapi-schema.json";
/// The definitions-only snapshot of the same sources, checked in.
const SNAPSHOT_72: &str = "schema/qemu-system-7.2.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One QEMU under test: its release and its running process.
struct Peer {
    release: &'static str,
    qemu: LocalQemu,
}

/// The machine every QEMU runs: `pc`, TCG, paused, a 64 MiB qcow2 disk, an e1000 NIC.
fn machine() -> System {
    System::new("pc").accel("tcg").paused().disk(64 << 20).nic()
}

fn start(release: &'static str, system: &System) -> Peer {
    let mut qemu =
        LocalQemu::system(system).unwrap_or_else(|e| panic!("starting QEMU {release}: {e}"));
    qemu.wait_for_socket(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("QEMU {release}: {e}"));
    Peer { release, qemu }
}

/// The peer's `query-qmp-schema`.
fn schema_of(peer: &Peer) -> Value {
    let client = qmp::blocking::Client::connect_unix(&qmp::Config::new(), peer.qemu.socket())
        .unwrap_or_else(|e| panic!("connecting to QEMU {}: {e}", peer.release));
    let schema = client
        .execute_raw("query-qmp-schema", None::<&()>)
        .unwrap_or_else(|e| panic!("query-qmp-schema of QEMU {}: {e}", peer.release));
    client.close().unwrap();
    schema
}

/// The `query-*` commands of an introspected schema that can be called without
/// arguments: no `arg-type` members, or only optional ones (introspection gives
/// optional members a `default`).
fn argument_free_queries(schema: &Value) -> BTreeSet<String> {
    let entries = schema
        .as_array()
        .expect("query-qmp-schema returns an array");
    let by_name: BTreeMap<&str, &Value> = entries
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e)))
        .collect();
    entries
        .iter()
        .filter(|e| e["meta-type"] == "command")
        .filter_map(|e| {
            let name = e["name"].as_str()?;
            if !name.starts_with("query-") {
                return None;
            }
            let args = by_name.get(e["arg-type"].as_str()?)?;
            let members = args["members"].as_array()?;
            let free = args["meta-type"] == "object"
                && args.get("variants").is_none()
                && members.iter().all(|m| m.get("default").is_some());
            free.then(|| name.to_owned())
        })
        .collect()
}

/// What one call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Decoded,
    /// The reply did not fit the bindings: member path and serde's message.
    Mismatch {
        path: String,
        message: String,
    },
    /// QEMU answered with an error of this class.
    QemuError(String),
}

/// `qmp --socket S call COMMAND --compact` with the program `qmp`.
fn call(qmp: &Path, peer: &Peer, command: &str) -> Outcome {
    let socket = peer.qemu.socket();
    let out = Command::new(qmp)
        .arg("--socket")
        .arg(socket)
        .args(["--timeout", "60", "call", command, "--compact"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", qmp.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = || {
        format!(
            "{} call {command} against QEMU {}: {} ({}), stderr: {stderr}",
            qmp.display(),
            peer.release,
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
    };
    match out.status.code() {
        Some(0) => Outcome::Decoded,
        Some(3) => {
            // The reply is printed anyway.
            serde_json::from_slice::<Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("the reply is not printed ({e}): {}", what()));
            parse_mismatch(&stderr).unwrap_or_else(|| panic!("no warning: {}", what()))
        }
        Some(1) => {
            // "qmp: QMP error from `query-x`: Class: description"
            let head = format!("QMP error from `{command}`: ");
            let class = stderr
                .split_once(&head)
                .and_then(|(_, rest)| rest.split_once(':'))
                .map(|(class, _)| class.to_owned());
            Outcome::QemuError(class.unwrap_or_else(|| panic!("failed: {}", what())))
        }
        _ => panic!("unexpected exit: {}", what()),
    }
}

/// The member and message of `qmp call`'s warning "… at `PATH`: MESSAGE (printed as
/// received)".
fn parse_mismatch(stderr: &str) -> Option<Outcome> {
    let line = stderr.lines().find(|l| l.contains("does not decode"))?;
    let (_, rest) = line.split_once(" at `")?;
    let (path, rest) = rest.split_once("`: ")?;
    let message = rest.strip_suffix(" (printed as received)").unwrap_or(rest);
    Some(Outcome::Mismatch {
        path: path.to_owned(),
        message: message.to_owned(),
    })
}

/// QEMU 7.2's sources when fetched, else its snapshot.
fn schema_72() -> PathBuf {
    let root = root();
    if root.join(SOURCES_72).is_file() {
        root.join(SOURCES_72)
    } else {
        println!("{SOURCES_72} is absent (scripts/fetch-old-schemas): using {SNAPSHOT_72}");
        root.join(SNAPSHOT_72)
    }
}

/// The `qmp` program built with QEMU 7.2's bindings, in `target/cross-release`.
fn build_qmp_72() -> PathBuf {
    let root = root();
    let schema = schema_72();
    // Beside the workspace's own build, which it leaves alone.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("cross-release");
    let start = Instant::now();
    // Offline: this test's own build fetched every dependency already.
    cargo_build(
        &root,
        &["--features", "cli", "--bin", "qmp"],
        &schema.to_string_lossy(),
        &target,
    );
    println!(
        "built qmp with QEMU 7.2's bindings ({}) in {:.1} s",
        schema.display(),
        start.elapsed().as_secs_f64()
    );
    target.join("debug/qmp")
}

#[test]
fn bindings_against_the_other_release() {
    let root = root();
    let old = match OldQemu::open(root.join("target/old-qemu/7.2")) {
        Ok(old) => old,
        Err(e) => {
            skip::skipping(&format!(
                "QEMU 7.2 is not unpacked (scripts/setup-old-qemu): {e}"
            ));
            return;
        }
    };
    if !qmp::local::installed("qemu-system-x86_64") || !qmp::local::installed("qemu-img") {
        skip::skipping("qemu-system-x86_64 or qemu-img is not installed (scripts/setup-qemu)");
        return;
    }
    if let Some(schema) = option_env!("QMP_SCHEMA") {
        println!("skipping: this package's bindings were built from QMP_SCHEMA={schema}, not QEMU 10.0's");
        return;
    }
    let started = Instant::now();
    let qmp_72 = build_qmp_72();
    let built = started.elapsed();
    let qmp_100 = PathBuf::from(env!("CARGO_BIN_EXE_qmp"));

    let peers = [
        start("10.0", &machine()),
        start("7.2", &machine().release(&old)),
    ];
    let lists: Vec<BTreeSet<String>> = peers
        .iter()
        .map(|p| argument_free_queries(&schema_of(p)))
        .collect();
    let commands: Vec<&String> = lists[0].intersection(&lists[1]).collect();
    assert!(
        commands.len() > 20,
        "too few argument-free queries in common: {commands:?}"
    );
    println!(
        "argument-free query-* commands: QEMU 10.0 {}, QEMU 7.2 {}, in both {}; \
         only in 10.0: {:?}; only in 7.2: {:?}",
        lists[0].len(),
        lists[1].len(),
        commands.len(),
        lists[0].difference(&lists[1]).collect::<Vec<_>>(),
        lists[1].difference(&lists[0]).collect::<Vec<_>>(),
    );

    let bindings = [("10.0", &qmp_100), ("7.2", &qmp_72)];
    let mut cross = Vec::new();
    let mut control_failures = Vec::new();
    let mut report = String::new();
    for (b_release, qmp) in bindings {
        for peer in &peers {
            let mut failures = Vec::new();
            let mut qemu_errors = Vec::new();
            for &command in &commands {
                match call(qmp, peer, command) {
                    Outcome::Decoded => {}
                    Outcome::QemuError(class) => qemu_errors.push(format!("{command} ({class})")),
                    Outcome::Mismatch { path, message } => {
                        failures.push((command.clone(), path, message))
                    }
                }
            }
            let direction = format!("{b_release} bindings → QEMU {}", peer.release);
            report += &format!(
                "\n{direction}: {} commands called, {} decode failures, {} QEMU errors\n",
                commands.len(),
                failures.len(),
                qemu_errors.len()
            );
            if !qemu_errors.is_empty() {
                report += &format!("  QEMU errors: {}\n", qemu_errors.join(", "));
            }
            for (command, path, message) in &failures {
                report += &format!("  | {command} | {path} | {message} |\n");
            }
            for (command, path, message) in failures {
                let row = (
                    b_release.to_owned(),
                    peer.release.to_owned(),
                    command,
                    path,
                    message,
                );
                if b_release == peer.release {
                    control_failures.push(row);
                } else {
                    cross.push(row);
                }
            }
        }
    }
    println!("{report}");
    println!(
        "(the 7.2 build took {:.1} s, the calls {:.1} s)",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );

    assert!(
        control_failures.is_empty(),
        "bindings fail on replies of their own release (a bug): {control_failures:#?}"
    );
    let expected: BTreeSet<(String, String, String, String, String)> = EXPECTED
        .iter()
        .map(|&(b, q, c, p, m)| (b.into(), q.into(), c.into(), p.into(), m.into()))
        .collect();
    let found: BTreeSet<_> = cross.into_iter().collect();
    let new: Vec<_> = found.difference(&expected).collect();
    let gone: Vec<_> = expected.difference(&found).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "the cross-release decode failures changed (update EXPECTED and the README's \
         table):\nnew: {new:#?}\ngone: {gone:#?}"
    );
}

#[test]
fn the_warning_of_qmp_call_is_parsed() {
    let stderr = "qmp: warning: the reply of `query-block` does not decode with the bindings \
                  this program was built with: at `return.0.inserted`: missing field `active` \
                  (printed as received)\n";
    assert_eq!(
        parse_mismatch(stderr),
        Some(Outcome::Mismatch {
            path: "return.0.inserted".into(),
            message: "missing field `active`".into(),
        })
    );
}

/// `target/<name>`, under `CARGO_TARGET_DIR` when that is set.
fn target_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join(name)
}

/// Runs `cargo build ARGS` in `dir` with `QMP_SCHEMA=schemas` into `target`, showing
/// cargo's output only when it fails.
fn cargo_build(dir: &Path, args: &[&str], schemas: &str, target: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .arg("build")
        .arg("--offline")
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env("QMP_SCHEMA", schemas)
        .env_remove("QMP_SCHEMA_DIALECT")
        .env_remove("QAPI_RELEASES")
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running cargo: {e}"));
    assert!(
        out.status.success(),
        "cargo build {args:?} in {} with QMP_SCHEMA={schemas} into {}: {}\n{}",
        dir.display(),
        target.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `qmp` program and `tests/union-probe/probe.rs`, both built with the union of
/// QEMU 7.2's and 10.0's schemas, in `target/cross-release-union`.
fn build_union() -> (PathBuf, PathBuf) {
    let root = root();
    let schemas = format!(
        "7.2={}:10.0={}",
        schema_72().display(),
        root.join("schema/qemu-system-10.0.json").display()
    );
    let target = target_dir("cross-release-union");
    let start = Instant::now();
    cargo_build(
        &root,
        &["--features", "cli", "--bin", "qmp"],
        &schemas,
        &target,
    );
    // The probe in a crate of its own that depends on this one: the bindings crate's
    // own targets are built with its default (one release) bindings by `cargo test`.
    let probe = target.join("probe-crate");
    std::fs::create_dir_all(&probe).expect("probe crate folder");
    std::fs::write(
        probe.join("Cargo.toml"),
        format!(
            "[package]\nname = \"union-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [workspace]\n[dependencies]\nqemu-qapi = {{ path = {:?} }}\n\
             [[bin]]\nname = \"union-probe\"\npath = {:?}\n",
            root.display().to_string(),
            root.join("tests/union-probe/probe.rs")
                .display()
                .to_string()
        ),
    )
    .expect("probe Cargo.toml");
    // The workspace's lock file: the same versions, nothing resolved anew.
    std::fs::copy(root.join("Cargo.lock"), probe.join("Cargo.lock")).expect("Cargo.lock");
    cargo_build(&probe, &[], &schemas, &target);
    println!(
        "built qmp and union-probe with the union of 7.2 and 10.0 ({schemas}) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    (target.join("debug/qmp"), target.join("debug/union-probe"))
}

#[test]
fn union_bindings_decode_both_releases() {
    let root = root();
    let old = match OldQemu::open(root.join("target/old-qemu/7.2")) {
        Ok(old) => old,
        Err(e) => {
            skip::skipping(&format!(
                "QEMU 7.2 is not unpacked (scripts/setup-old-qemu): {e}"
            ));
            return;
        }
    };
    if !qmp::local::installed("qemu-system-x86_64") || !qmp::local::installed("qemu-img") {
        skip::skipping("qemu-system-x86_64 or qemu-img is not installed (scripts/setup-qemu)");
        return;
    }
    let started = Instant::now();
    let (qmp_union, probe) = build_union();
    let built = started.elapsed();
    let peers = [
        start("10.0", &machine()),
        start("7.2", &machine().release(&old)),
    ];
    let mut report = String::new();
    let mut failures = Vec::new();
    for peer in &peers {
        // Every argument-free query this release has, not only those both have.
        let commands = argument_free_queries(&schema_of(peer));
        let mut qemu_errors = Vec::new();
        let mut decoded = 0;
        for command in &commands {
            match call(&qmp_union, peer, command) {
                Outcome::Decoded => decoded += 1,
                Outcome::QemuError(class) => qemu_errors.push(format!("{command} ({class})")),
                Outcome::Mismatch { path, message } => {
                    failures.push((peer.release, command.clone(), path, message))
                }
            }
        }
        report += &format!(
            "\nunion bindings → QEMU {}: {} commands called, {decoded} decoded, {} QEMU errors: {}\n",
            peer.release,
            commands.len(),
            qemu_errors.len(),
            qemu_errors.join(", ")
        );
    }
    for peer in &peers {
        let out = Command::new(&probe)
            .arg(peer.qemu.socket())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", probe.display()));
        report += &format!(
            "union-probe → QEMU {}: {}\n{}",
            peer.release,
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            out.status.success(),
            "union-probe against QEMU {}: {}\nstdout: {}\nstderr: {}",
            peer.release,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("{report}");
    println!(
        "(the union builds took {:.1} s, the calls {:.1} s)",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "replies the union bindings do not decode: {failures:#?}"
    );
}
