//! `qmp::local::Launch` against the installed QEMU 10.0 (issue 19): a system emulator
//! started paused, extra arguments that show in queries, a storage daemon with an
//! extra `--blockdev`, a chosen binary and monitor socket, and the errors of a missing
//! binary and of pausing the storage daemon. A test whose QEMU is missing skips with
//! one line (tests/support/skip.rs).

#[path = "support/skip.rs"]
mod skip;

use qmp::local::{installed, Launch, LocalQemu};
use qmp::Config;
use serde_json::{json, Value};

fn have(binary: &str) -> bool {
    let found = installed(binary);
    if !found {
        skip::skipping(&format!("{binary} is not installed (scripts/setup-qemu)"));
    }
    found
}

fn query(qemu: &mut LocalQemu, command: &str) -> Value {
    let client = qemu.connect_blocking(&Config::new()).expect("connecting");
    let reply = client
        .execute_raw(command, None::<&()>)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    client.close().unwrap();
    reply
}

#[test]
fn a_system_started_paused_waits_in_prelaunch_until_cont() {
    if !have("qemu-system-x86_64") {
        return;
    }
    let mut qemu = Launch::system_none().paused().start().expect("starting");
    let client = qemu.connect_blocking(&Config::new()).expect("connecting");
    let status = client.execute_raw("query-status", None::<&()>).unwrap();
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["status"], "prelaunch", "{status}");
    client.execute_raw("cont", None::<&()>).unwrap();
    let status = client.execute_raw("query-status", None::<&()>).unwrap();
    assert_eq!(status["running"], true, "{status}");
    client.close().unwrap();
    // Not paused unless asked.
    let mut running = Launch::system_none().start().expect("starting");
    assert_eq!(query(&mut running, "query-status")["status"], "running");
}

#[test]
fn an_extra_argument_shows_in_a_query() {
    if !have("qemu-system-x86_64") {
        return;
    }
    let name = format!("local-test-{}", std::process::id());
    let mut qemu = Launch::system_none()
        .arg("-name")
        .arg(&name)
        .start()
        .expect("starting");
    assert_eq!(query(&mut qemu, "query-name"), json!({ "name": name }));
    // `args` too, together with `paused`, on a machine described by `System`.
    let mut pc = Launch::system(qmp::local::System::new("none"))
        .paused()
        .args(["-name", "second"])
        .start()
        .expect("starting");
    let client = pc.connect_blocking(&Config::new()).unwrap();
    assert_eq!(
        client.execute_raw("query-name", None::<&()>).unwrap(),
        json!({"name": "second"})
    );
    assert_eq!(
        client.execute_raw("query-status", None::<&()>).unwrap()["status"],
        "prelaunch"
    );
    client.close().unwrap();
}

#[test]
fn a_storage_daemon_with_an_extra_blockdev() {
    if !have("qemu-storage-daemon") {
        return;
    }
    let mut qemu = Launch::storage_daemon()
        .args(["--blockdev", "driver=null-co,node-name=extra0,size=4096"])
        .start()
        .expect("starting");
    let nodes = query(&mut qemu, "query-named-block-nodes");
    let names: Vec<&str> = nodes
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|n| n["node-name"].as_str())
        .collect();
    assert_eq!(names, ["extra0"], "{nodes}");
}

#[test]
fn a_chosen_binary_and_socket_are_used_and_the_socket_removed() {
    if !have("qemu-storage-daemon") {
        return;
    }
    let path = std::env::var_os("PATH").unwrap();
    let binary = std::env::split_paths(&path)
        .map(|d| d.join("qemu-storage-daemon"))
        .find(|p| p.is_file())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A comma in the path: QEMU's option syntax needs it doubled.
    let socket = dir.path().join("mon,1.sock");
    let mut qemu = Launch::storage_daemon()
        .binary(&binary)
        .socket(&socket)
        .start()
        .expect("starting");
    assert_eq!(qemu.socket(), socket);
    let client = qemu.connect_blocking(&Config::new()).expect("connecting");
    let v = client.execute_raw("query-version", None::<&()>).unwrap();
    assert_eq!(v["qemu"]["major"], 10);
    client.close().unwrap();
    assert!(socket.exists());
    drop(qemu);
    assert!(!socket.exists(), "the socket is removed with the process");
}

#[test]
fn a_missing_binary_is_named_with_the_path_searched() {
    let e = Launch::system_none()
        .binary("qemu-system-nonexistent19")
        .start()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let searched = match std::env::var_os("PATH") {
        Some(p) => format!(
            "not found in any directory of PATH ({})",
            p.to_string_lossy()
        ),
        None => "not found: PATH is not set".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        format!(
            "starting qemu-system-nonexistent19: {searched}; install it, or give its path \
             with `Launch::binary`"
        )
    );
    // A path is not looked up: the system's reason, with the path.
    let e = Launch::storage_daemon()
        .binary("/nonexistent/qemu-storage-daemon")
        .start()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "starting /nonexistent/qemu-storage-daemon: No such file or directory (os error 2)"
    );
}

#[test]
fn a_storage_daemon_cannot_start_paused() {
    let e = Launch::storage_daemon().paused().start().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        "qemu-storage-daemon cannot start paused: it runs no guest (`Launch::paused` is for \
         the system emulator)"
    );
}

/// The constructors the tests use everywhere start what they started before.
#[tokio::test]
async fn the_old_constructors_still_work() {
    if !have("qemu-storage-daemon") || !have("qemu-system-x86_64") {
        return;
    }
    for mut qemu in [
        LocalQemu::storage_daemon().unwrap(),
        LocalQemu::system_none().unwrap(),
    ] {
        let client = qemu.connect(&Config::new()).await.unwrap();
        let v = client
            .execute_raw("query-version", None::<&()>)
            .await
            .unwrap();
        assert_eq!(v["qemu"]["major"], 10);
        client.close().await;
    }
}
