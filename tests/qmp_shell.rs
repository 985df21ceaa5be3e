//! `qmp shell` end to end, through a pseudo-terminal (rexpect), against QEMU 10.0:
//! the program started as an operator starts it, keys typed as an operator types
//! them (Tab, the Up arrow, Ctrl-D), the screen read back with the terminal's escape
//! sequences left out.
//!
//! Every expectation waits at most `TIMEOUT` (generous: a cold QEMU start and the
//! schema fetch take a few seconds on a loaded machine); nothing is timed.

#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;

use qmp::local::LocalQemu;
use rexpect::reader::Options;
use rexpect::session::{spawn_with_options, PtySession};

/// How long one expectation may wait before the test fails.
const TIMEOUT_MS: u64 = 60_000;

const PROMPT: &str = "(QEMU) ";

/// Whether QEMU is there to test against (skips, or fails under CI, otherwise).
fn have_qemu() -> bool {
    if qmp::local::installed("qemu-system-x86_64") {
        return true;
    }
    skip::skipping("qemu-system-x86_64 is not installed");
    false
}

/// `qemu-system-x86_64 -M none` with a second QMP monitor on `second.sock` beside
/// the first, for a second client.
fn qemu_with_two_monitors() -> (LocalQemu, std::path::PathBuf) {
    let mut second = None;
    let mut qemu = LocalQemu::spawn("qemu-system-x86_64", |socket| {
        let other = socket.with_file_name("second.sock");
        let v = vec![
            "-M".into(),
            "none".into(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            format!("socket,id=mon,path={},server=on,wait=off", socket.display()),
            "-mon".into(),
            "chardev=mon,mode=control".into(),
            "-chardev".into(),
            format!("socket,id=mon2,path={},server=on,wait=off", other.display()),
            "-mon".into(),
            "chardev=mon2,mode=control".into(),
        ];
        second = Some(other);
        v
    })
    .expect("starting qemu-system-x86_64");
    qemu.wait_for_socket(std::time::Duration::from_secs(30))
        .expect("QEMU's first monitor");
    let second = second.expect("the second socket's path");
    (qemu, second)
}

/// `qmp [ARGS] shell [SHELL_ARGS]` in a pseudo-terminal, its history under
/// `state` (as `$XDG_STATE_HOME`). It runs under `sh`, which prints its exit status
/// when it ends (rexpect's wait status is nix's, a version this crate does not
/// name).
fn shell(global: &[&str], shell_args: &[&str], state: &Path) -> PtySession {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#""$0" "$@"; echo "[exit status $?]""#)
        .arg(env!("CARGO_BIN_EXE_qmp"))
        .args(global)
        .arg("shell")
        .args(shell_args)
        .env("XDG_STATE_HOME", state)
        // A terminal the line editor drives (not `dumb`, whatever CI has).
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(TIMEOUT_MS))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).expect("starting qmp shell in a pty");
    p.exp_string(PROMPT).expect("the first prompt");
    p
}

/// Waits for the shell to end and returns its exit status.
fn exit_code(mut p: PtySession) -> i32 {
    let (_, status) = p
        .exp_regex(r"\[exit status [0-9]+\]")
        .expect("the shell ends");
    p.exp_eof().expect("sh ends");
    status
        .trim_start_matches("[exit status ")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

/// Types `text` (sent at once: rexpect's writer holds bytes until a newline).
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

const UP: &str = "\x1b[A";
const TAB: &str = "\t";
const CTRL_D: char = 'd';

#[test]
fn commands_with_arguments_replies_and_errors() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // No --socket: the program starts its own QEMU, as for `compat`.
    let mut p = shell(&[], &[], state.path());
    p.send_line("query-status").unwrap();
    p.exp_string("\"status\": \"running\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("qom-list path=/machine").unwrap();
    p.exp_string("\"name\": \"peripheral\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // QEMU's error reply: printed, and the shell goes on.
    p.send_line("qom-list path=/nowhere").unwrap();
    p.exp_string("Error: DeviceNotFound: Device '/nowhere' not found")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    // A line that is not `command key=value`.
    p.send_line("qom-list path").unwrap();
    p.exp_string("Expected a key=value pair, got 'path'")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    // Values as qmp-shell reads them: 1048576 is a number (QEMU would refuse the
    // string "1048576" for `size`).
    p.send_line("object-add qom-type=memory-backend-ram id=m0 size=1048576")
        .unwrap();
    p.exp_string("\"return\": {}").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("qom-get path=/objects/m0 property=size")
        .unwrap();
    p.exp_string("\"return\": 1048576").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Raw JSON.
    p.send_line(r#"{"execute": "query-name"}"#).unwrap();
    p.exp_string("\"return\": {}").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn tab_completes_commands_arguments_and_enum_values() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&[], &[], state.path());
    // query-stats, query-stats-schemas and query-status share `query-stat`: the
    // first Tab completes that much (the typed text was only `query-sta`), the
    // second lists the three.
    keys(&mut p, &format!("query-sta{TAB}"));
    p.exp_string("query-stat").unwrap();
    keys(&mut p, TAB);
    p.exp_regex("query-stats +query-stats-schemas +query-status")
        .unwrap();
    keys(&mut p, &format!("u{TAB}"));
    p.exp_string("query-status ").unwrap();
    // Sent as completed: `query-statu` alone would be an unknown command.
    keys(&mut p, "\r");
    p.exp_string("\"status\": \"running\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // An argument name, then an enum value (ShutdownAction: poweroff, pause).
    keys(&mut p, &format!("set-action sh{TAB}"));
    p.exp_string("set-action shutdown=").unwrap();
    keys(&mut p, &format!("po{TAB}"));
    p.exp_string("set-action shutdown=poweroff ").unwrap();
    keys(&mut p, "\r");
    p.exp_string("\"return\": {}").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn an_event_shows_while_a_line_is_typed_and_the_line_stays() {
    if !have_qemu() {
        return;
    }
    let (qemu, second) = qemu_with_two_monitors();
    let state = tempfile::tempdir().unwrap();
    let socket = qemu.socket().to_str().unwrap().to_owned();
    let mut p = shell(&["--socket", &socket], &[], state.path());
    // Half a command, not sent.
    keys(&mut p, "query-stat");
    p.exp_string("query-stat").unwrap();
    // Another client stops the machine: QEMU sends STOP to every monitor.
    let other = qmp::blocking::Client::connect_unix(&qmp::Config::new(), &second)
        .expect("connecting to the second monitor");
    other
        .execute_raw("stop", None::<&()>)
        .expect("stop on the second monitor");
    p.exp_string("\"event\": \"STOP\"").unwrap();
    // The prompt and the half-typed line are drawn again below the event.
    p.exp_string("(QEMU) query-stat").unwrap();
    // ... and are still what the editor holds: the rest of the word completes it.
    keys(&mut p, "us\r");
    p.exp_string("\"status\": \"paused\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
    drop(qemu);
}

#[test]
fn history_is_recalled_after_a_restart() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&[], &[], state.path());
    p.send_line("query-status").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("qom-list path=/machine").unwrap();
    p.exp_string("\"name\": \"peripheral\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
    let file = state.path().join("qmp/history");
    let saved = std::fs::read_to_string(&file).expect("the history file under XDG_STATE_HOME");
    assert!(saved.contains("qom-list path=/machine"), "{saved}");

    // A new shell (and a new QEMU): Up shows the last session's last command.
    let mut p = shell(&[], &[], state.path());
    keys(&mut p, UP);
    p.exp_string("(QEMU) qom-list path=/machine").unwrap();
    keys(&mut p, "\r");
    p.exp_string("\"name\": \"peripheral\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Up twice: the one before.
    keys(&mut p, UP);
    keys(&mut p, UP);
    p.exp_string("(QEMU) query-status").unwrap();
    // Ctrl-D on a non-empty line deletes a character: clear the line first.
    p.send_control('u').unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn hmp_mode_passes_lines_through() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&[], &["--hmp"], state.path());
    p.send_line("info status").unwrap();
    p.exp_string("VM status: running").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("stop").unwrap();
    p.exp_string(PROMPT).unwrap();
    // HMP commands complete too (from the peer's `help` and `info`).
    keys(&mut p, &format!("info versi{TAB}"));
    p.exp_string("(QEMU) info version").unwrap();
    p.send_control('u').unwrap();
    p.send_line("info status").unwrap();
    p.exp_string("VM status: paused").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
    // HMP lines are kept apart from QMP's.
    let saved = std::fs::read_to_string(state.path().join("qmp/history-hmp")).unwrap();
    assert!(saved.contains("info status"), "{saved}");
}

#[test]
fn compact_output_is_one_line() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&[], &["--compact"], state.path());
    p.send_line("query-status").unwrap();
    p.exp_string(r#"{"return":{"running":true,"status":"running"}}"#)
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn a_lost_connection_ends_the_shell_with_status_1_with_no_reconnect() {
    if !have_qemu() {
        return;
    }
    let (mut qemu, _second) = qemu_with_two_monitors();
    let state = tempfile::tempdir().unwrap();
    let socket = qemu.socket().to_str().unwrap().to_owned();
    let mut p = shell(&["--socket", &socket], &["--no-reconnect"], state.path());
    keys(&mut p, "query-");
    p.exp_string("query-").unwrap();
    qemu.child().kill().unwrap();
    let _ = qemu.child().wait();
    p.exp_string("the connection to QEMU was lost").unwrap();
    assert_eq!(exit_code(p), 1);
}

#[test]
fn quit_stops_qemu_and_ends_the_shell_with_status_0() {
    if !have_qemu() {
        return;
    }
    let (mut qemu, _second) = qemu_with_two_monitors();
    let state = tempfile::tempdir().unwrap();
    let socket = qemu.socket().to_str().unwrap().to_owned();
    let mut p = shell(&["--socket", &socket], &[], state.path());
    p.send_line("quit").unwrap();
    p.exp_string("QEMU is quitting").unwrap();
    assert_eq!(exit_code(p), 0);
    let status = qemu.child().wait().unwrap();
    assert!(status.success(), "QEMU: {status}");
}

#[test]
fn transactions_nested_keys_and_ctrl_c() {
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&[], &[], state.path());
    // `cache.no-flush=true` is `{"cache": {"no-flush": true}}`: QEMU would refuse a
    // member named "cache.no-flush".
    p.send_line("blockdev-add driver=null-co node-name=n0 cache.no-flush=true read-only=true")
        .unwrap();
    p.exp_string("\"return\": {}").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("query-named-block-nodes flat=true").unwrap();
    p.exp_string("\"no-flush\": true").unwrap();
    p.exp_string(PROMPT).unwrap();
    // qmp-shell's transaction sub-shell: actions gathered under the TRANS> prompt,
    // sent as one `transaction` at `)`.
    p.send_line("transaction(").unwrap();
    p.exp_string("TRANS> ").unwrap();
    p.send_line("block-dirty-bitmap-add node=n0 name=b0")
        .unwrap();
    p.exp_string("TRANS> ").unwrap();
    p.send_line("block-dirty-bitmap-add node=n0 name=b1 )")
        .unwrap();
    p.exp_string("\"return\": {}").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("query-named-block-nodes flat=true").unwrap();
    p.exp_regex("\"name\": \"b0\"|\"name\": \"b1\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Ctrl-C drops an open transaction (and the line being typed).
    p.send_line("transaction(").unwrap();
    p.exp_string("TRANS> ").unwrap();
    keys(&mut p, "half a line");
    p.exp_string("half a line").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("(transaction dropped)").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("query-status").unwrap();
    p.exp_string("\"status\": \"running\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn piped_lines_run_in_turn_and_leave_no_history() {
    use std::io::Write as _;
    use std::process::Stdio;
    if !have_qemu() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qmp"))
        .args(["shell", "--compact"])
        .env("XDG_STATE_HOME", state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"query-status\nqom-list path\n{\"execute\": \"query-name\"}\n")
        .unwrap();
    // Bounded by the input's end: the shell ends at EOF.
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(r#"{"return":{"running":true,"status":"running"}}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"return":{}}"#), "{stdout}");
    assert!(
        stderr.contains("Expected a key=value pair, got 'path'"),
        "{stderr}"
    );
    assert!(!state.path().join("qmp/history").exists());
}

/// `qemu-system-x86_64 -M none` with its QMP monitor on `path`, which a later one can
/// take over; killed when dropped.
struct QemuAt(std::process::Child);

impl QemuAt {
    /// Starts it (`-S`: paused before the machine starts, so that its `query-status`
    /// says `prelaunch` where a first one's says `running`) and waits for its socket.
    fn start(path: &Path, paused: bool) -> QemuAt {
        use std::process::Stdio;
        // A killed QEMU leaves its socket file: gone, the new one's shows it is up.
        let _ = std::fs::remove_file(path);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-M", "none", "-nodefaults", "-display", "none", "-qmp"])
            .arg(format!("unix:{},server=on,wait=off", path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if paused {
            cmd.arg("-S");
        }
        let mut qemu = QemuAt(cmd.spawn().expect("starting qemu-system-x86_64"));
        // Bounded, generously: a precondition, not what is tested.
        for _ in 0..600 {
            if path.exists() {
                return qemu;
            }
            if let Ok(Some(status)) = qemu.0.try_wait() {
                panic!("qemu-system-x86_64 exited ({status}) before making {path:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("qemu-system-x86_64 did not make {path:?} within a minute");
    }
}

impl Drop for QemuAt {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The "reconnected" note and the event stream's gap note, in either order (they
/// come from two sources).
const RECONNECTED_AND_GAP: &str = r"(?s)qmp: reconnected to QEMU [0-9]+\.[0-9]+\.[0-9]+.*qmp: note: .*re-established|qmp: note: .*re-established.*qmp: reconnected to QEMU [0-9]+\.[0-9]+\.[0-9]+";

#[test]
fn the_shell_reconnects_when_qemu_restarts_and_the_half_typed_line_stays() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let first = QemuAt::start(&path, false);
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(&["--socket", path.to_str().unwrap()], &[], state.path());
    p.send_line("query-status").unwrap();
    p.exp_string("\"status\": \"running\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Half a command, not sent.
    keys(&mut p, "query-stat");
    p.exp_string("query-stat").unwrap();
    drop(first);
    p.exp_string("qmp: the connection to QEMU was lost; reconnecting to unix:")
        .unwrap();
    p.exp_string("(QEMU) query-stat").unwrap();
    // A new QEMU on the same path, paused: its answers are told from the first's.
    let _second = QemuAt::start(&path, true);
    p.exp_regex(RECONNECTED_AND_GAP).unwrap();
    // The prompt and the half-typed line are drawn again below the notes, and are
    // still what the editor holds.
    p.exp_string("(QEMU) query-stat").unwrap();
    keys(&mut p, "us\r");
    p.exp_string("\"status\": \"prelaunch\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Completion works on the new connection (refreshed from its schema).
    keys(&mut p, &format!("query-versi{TAB}"));
    p.exp_string("(QEMU) query-version ").unwrap();
    keys(&mut p, "\r");
    p.exp_string("\"qemu\": {").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn a_command_typed_while_reconnecting_waits_for_the_new_qemu() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let first = QemuAt::start(&path, false);
    let state = tempfile::tempdir().unwrap();
    // --timeout bounds the wait for the connection: generous, nothing is timed.
    let mut p = shell(
        &["--socket", path.to_str().unwrap(), "--timeout", "300"],
        &[],
        state.path(),
    );
    drop(first);
    p.exp_string("qmp: the connection to QEMU was lost; reconnecting")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    // Sent while nothing listens: it waits, and goes to the next QEMU.
    p.send_line("query-status").unwrap();
    p.exp_string("query-status").unwrap();
    let _second = QemuAt::start(&path, true);
    p.exp_string("\"status\": \"prelaunch\"").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn a_command_typed_while_reconnecting_is_not_sent_after_the_timeout() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let first = QemuAt::start(&path, false);
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(
        &["--socket", path.to_str().unwrap(), "--timeout", "1"],
        &[],
        state.path(),
    );
    drop(first);
    p.exp_string("qmp: the connection to QEMU was lost; reconnecting")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("query-status").unwrap();
    p.exp_string("`query-status` was not sent: QEMU at unix:")
        .unwrap();
    // The shell goes on.
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}

#[test]
fn the_shell_gives_up_reconnecting_with_status_1() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let first = QemuAt::start(&path, false);
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(
        &["--socket", path.to_str().unwrap()],
        &["--reconnect-give-up", "1"],
        state.path(),
    );
    keys(&mut p, "query-");
    p.exp_string("query-").unwrap();
    drop(first);
    p.exp_string("qmp: the connection to QEMU was lost; reconnecting")
        .unwrap();
    p.exp_string("gave up connecting to QEMU at unix:").unwrap();
    p.exp_string("the shell ends").unwrap();
    assert_eq!(exit_code(p), 1);
}

#[test]
fn hmp_mode_reconnects_too() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let first = QemuAt::start(&path, false);
    let state = tempfile::tempdir().unwrap();
    let mut p = shell(
        &["--socket", path.to_str().unwrap()],
        &["--hmp"],
        state.path(),
    );
    p.send_line("info status").unwrap();
    p.exp_string("VM status: running").unwrap();
    p.exp_string(PROMPT).unwrap();
    drop(first);
    p.exp_string("qmp: the connection to QEMU was lost; reconnecting")
        .unwrap();
    let _second = QemuAt::start(&path, true);
    p.exp_regex(RECONNECTED_AND_GAP).unwrap();
    p.exp_string(PROMPT).unwrap();
    // HMP commands still complete (from the new QEMU's `help` and `info`).
    keys(&mut p, &format!("info versi{TAB}"));
    p.exp_string("(QEMU) info version").unwrap();
    p.send_control('u').unwrap();
    p.send_line("info status").unwrap();
    p.exp_string("VM status: paused (prelaunch)").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control(CTRL_D).unwrap();
    assert_eq!(exit_code(p), 0);
}
