//! `qmp::ga::Config::connect_path` on a character device: the host end of a guest
//! agent's serial port when QEMU exposes it as a pseudo-terminal (`-chardev pty`).
//!
//! No guest here, so the test builds the same path: a pty pair whose master side is
//! relayed, byte for byte, to a real `qemu-ga` on the host (as QEMU relays the pty to
//! the guest's serial port), and the client opens the pty's `/dev/pts/N`. The pty is
//! left as `openpty` makes it, a cooked terminal (echo, line editing), which would
//! echo the client's requests back to it and mangle the framing: the client must put
//! it in raw mode. Stale bytes are on the line before the client opens it, as an
//! earlier client or a booting guest leaves them.

#[path = "support/qemu_ga.rs"]
mod qemu_ga;
#[path = "support/skip.rs"]
mod skip;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use qmp::ga;
use serde_json::Value;

/// A pty pair; returns the master and the slave's path (the slave's descriptor is
/// closed: the client opens it by path, as it would QEMU's).
fn pty() -> (OwnedFd, PathBuf) {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let path = std::fs::read_link(format!("/proc/self/fd/{}", pair.slave.as_raw_fd()))
        .expect("the pty's path");
    // Kept open until the client has it, so that the master does not see a hang-up
    // (EIO) before; leaked on purpose for the test's lifetime.
    std::mem::forget(pair.slave);
    (pair.master, path)
}

/// Copies bytes both ways between the pty's master and the agent's socket, on two
/// threads, until either side ends.
fn relay(master: OwnedFd, socket: &std::path::Path) {
    let to_agent = std::os::unix::net::UnixStream::connect(socket).expect("the agent's socket");
    let from_agent = to_agent.try_clone().expect("clone");
    let master_r = std::fs::File::from(master);
    let master_w = master_r.try_clone().expect("clone");
    std::thread::spawn(move || {
        let (mut r, mut w) = (master_r, to_agent);
        let _ = std::io::copy(&mut r, &mut w);
    });
    std::thread::spawn(move || {
        let (mut r, mut w) = (from_agent, master_w);
        let _ = std::io::copy(&mut r, &mut w);
    });
}

#[tokio::test]
async fn a_pty_relayed_to_the_agent_is_reached_by_path_in_raw_mode() {
    let Some(program) = qemu_ga::program() else {
        skip::skipping("qemu-ga is not installed: the pty connection");
        return;
    };
    let agent = qemu_ga::Agent::start(program);
    // The socket exists once the agent is up; connecting to it by path (a socket)
    // takes the same call.
    let direct = qemu_ga::guard("the socket", qemu_ga::config().connect_path(agent.socket()))
        .await
        .expect("connect_path on the agent's socket");
    let info = direct
        .execute_raw::<Value>("guest-info", None)
        .await
        .expect("guest-info");
    assert!(info["version"].is_string(), "{info}");
    direct.close().await;
    drop(direct);

    let (master, slave) = pty();
    // What an earlier client left on the line: a stale reply and half of another.
    let mut m = std::fs::File::from(master.try_clone().expect("clone"));
    m.write_all(b"{\"return\": {}, \"id\": 99}\n{\"return\": {\"sta")
        .expect("stale bytes");
    drop(m);
    relay(master, &agent.socket());

    let client = qemu_ga::guard("the pty", qemu_ga::config().connect_path(&slave))
        .await
        .unwrap_or_else(|e| panic!("connect_path on {}: {e}", slave.display()));
    for _ in 0..3 {
        let ping = qemu_ga::guard(
            "guest-ping",
            client.execute_raw::<Value>("guest-ping", None),
        )
        .await
        .expect("guest-ping over the pty");
        assert_eq!(ping, serde_json::json!({}));
    }
    let info = qemu_ga::guard(
        "guest-info",
        client.execute_raw::<Value>("guest-info", None),
    )
    .await
    .expect("guest-info over the pty");
    assert!(
        info["supported_commands"]
            .as_array()
            .is_some_and(|c| c.len() > 20),
        "{info}"
    );
    // The terminal is raw now: no echo, no line discipline.
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .open(&slave)
        .expect("the pty again");
    let t = nix::sys::termios::tcgetattr(&fd).expect("tcgetattr");
    assert!(
        !t.local_flags.contains(nix::sys::termios::LocalFlags::ECHO)
            && !t
                .local_flags
                .contains(nix::sys::termios::LocalFlags::ICANON),
        "{:?}",
        t.local_flags
    );
}

#[tokio::test]
async fn a_path_that_is_neither_socket_nor_device_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-an-agent");
    std::fs::write(&file, b"").expect("a file");
    let err = ga::Config::new()
        .connect_path(&file)
        .await
        .expect_err("a regular file");
    assert_eq!(
        err.to_string(),
        format!(
            "I/O error: connecting to {0}: {0} is a regular file: a guest agent is \
             reached through a Unix socket or a character device (a pty QEMU created for \
             its serial port)",
            file.display()
        )
    );
    let missing = dir.path().join("missing");
    let err = ga::Config::new()
        .connect_path(&missing)
        .await
        .expect_err("a missing path");
    assert!(err.to_string().contains("No such file"), "{err}");
}
