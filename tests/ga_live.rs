//! `qmp::ga::Client` against the real `qemu-ga` of QEMU 10.0, run on the host with
//! `-m unix-listen` in a private directory (killed and reaped on drop): typed calls,
//! `guest-exec`, a stale reply left by an earlier client, the agent killed mid-call
//! and restarted on the same socket; and the helpers of `qemu_qapi::guest` (exec with
//! output, exit codes, stdin, a timeout, other calls going through while a program
//! runs; a file written and read back in chunks). Skipped (with a message) where
//! qemu-ga is not installed. Never fsfreeze here: this agent acts on this machine
//! (tests/guest_helpers.rs tests the freeze guard against a fake agent).

use std::process::Command;
use std::time::Duration;

use qemu_qapi::ga::commands::{GuestExec, GuestExecStatus, GuestInfo, GuestPing};
use qemu_qapi::ga::types::GuestExecCaptureOutput;
use qemu_qapi::guest::{self, Exec, ExitStatus, Transfer};
use qemu_qapi::qmp;
use qmp::ga;

#[path = "support/skip.rs"]
mod skip;

#[path = "support/qemu_ga.rs"]
mod qemu_ga;
use qemu_ga::{config, guard, Agent};

macro_rules! agent_or_skip {
    () => {
        match qemu_ga::program() {
            Some(p) => Agent::start(p),
            None => {
                skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
                return;
            }
        }
    };
}

/// Decodes standard base64 (what `guest-exec-status` returns); `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[tokio::test]
async fn info_ping_and_exec() {
    let agent = agent_or_skip!();
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"), "{}", info.version);
    assert!(info
        .supported_commands
        .iter()
        .any(|c| c.name == "guest-shutdown" && !c.success_response));
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    assert!(!client.agent_ignores_ids(), "qemu-ga 10.0 echoes ids");

    let exec = GuestExec::new("/bin/echo")
        .with_arg(vec!["hello".into()])
        .with_capture_output(GuestExecCaptureOutput::Flag(true));
    let pid = guard("guest-exec", client.execute(&exec))
        .await
        .unwrap()
        .pid;
    let status = guard("guest-exec-status", async {
        loop {
            let status = client.execute(&GuestExecStatus::new(pid)).await.unwrap();
            if status.exited {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(status.exitcode, Some(0));
    let out = status.out_data.expect("captured output");
    assert_eq!(
        base64_decode(&out).as_deref(),
        Some(&b"hello\n"[..]),
        "{out}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_stale_reply_from_an_earlier_client_never_reaches_a_caller() {
    let agent = agent_or_skip!();
    // Once the socket is up: an earlier client asks, reads only part of the answers
    // and goes away leaving half a request in the agent's parser. On a unix-listen
    // socket the agent keeps that half request for the next connection (its parse
    // error is that connection's first line); on a virtio-serial port unread replies
    // would stay in the stream too.
    guard("first connect", config().connect_unix(agent.socket()))
        .await
        .unwrap()
        .close()
        .await;
    {
        use std::io::{BufRead, Write};
        let mut raw = std::os::unix::net::UnixStream::connect(agent.socket()).unwrap();
        raw.write_all(
            b"{\"execute\": \"guest-info\", \"id\": 1}\n\
              {\"execute\": \"guest-get-time\", \"id\": 2}\n\
              {\"execute\": \"guest-sync\", \"arguments\": {\"id\": 77}}\n\
              {\"execute\": \"guest-ping\", \"id\": 3}\n\
              {\"execute\": \"guest-p",
        )
        .unwrap();
        // Read up to the reply of guest-sync, so the agent has written everything
        // before it: qemu-ga 10.0 was seen to exit when a client hung up on replies
        // it was still writing. The reply to guest-ping stays unread.
        let mut lines = std::io::BufReader::new(raw).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("77") {
                break;
            }
        }
    }
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap();
    // Untyped, so that another command's reply would show.
    let reply = guard("guest-ping", client.execute_raw("guest-ping", None::<&()>))
        .await
        .unwrap();
    assert_eq!(reply, serde_json::json!({}));
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"));
}

#[tokio::test]
async fn the_agent_killed_mid_call_fails_every_caller_and_a_restart_resynchronises() {
    let mut agent = agent_or_skip!();
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap();
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    // Stopped, the agent reads nothing and answers nothing: the calls are in flight
    // (or queued) when it is killed.
    let stopped = Command::new("kill")
        .args(["-STOP", &agent.pid().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.execute(&GuestInfo).await.map(drop) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.kill();
    for call in calls {
        let e = guard("a call to a killed agent", call)
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.is_closed(), "{e}");
    }
    let e = guard("a later call", client.execute(&GuestPing))
        .await
        .unwrap_err();
    assert!(e.is_closed(), "{e}");

    // The same socket path, a new agent: a new client synchronises and works.
    agent.restart();
    let client = guard("reconnect", config().connect_unix(agent.socket()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"));
}

#[tokio::test]
async fn no_agent_on_the_socket_is_a_clear_error() {
    let Some(program) = qemu_ga::program() else {
        skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
        return;
    };
    let mut agent = Agent::start(program);
    agent.kill();
    let e = ga::Config::new()
        .wait_for_agent(Some(Duration::from_millis(300)))
        .connect_unix(agent.socket())
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(
        e.to_string()
            .contains(&agent.socket().display().to_string()),
        "{e}"
    );
}

async fn connected(agent: &Agent) -> ga::Client {
    guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn guest_exec_collects_stdout_stderr_exit_codes_and_feeds_stdin() {
    let agent = agent_or_skip!();
    let client = connected(&agent).await;

    let out = guard(
        "exec echo",
        guest::exec(&client, &Exec::new("/bin/echo").arg("hello")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, ExitStatus::Code(0));
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello\n");
    assert!(out.stderr.is_empty());
    assert!(!out.stdout_truncated && !out.stderr_truncated);

    let out = guard(
        "exec sh",
        guest::exec(
            &client,
            &Exec::new("/bin/sh").args(["-c", "echo oops >&2; exit 3"]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stderr, b"oops\n");
    assert!(out.stdout.is_empty());

    // Not UTF-8, with the agent's delimiter byte in it: stdin to stdout unchanged.
    let input: Vec<u8> = (0..=255u8).rev().chain(*b"line\n").collect();
    let out = guard(
        "exec cat",
        guest::exec(&client, &Exec::new("/bin/cat").input(input.clone())),
    )
    .await
    .unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout, input);

    // A program that does not exist: qemu-ga's error, with what we were doing.
    let e = guard(
        "exec missing",
        guest::exec(&client, &Exec::new("/nonexistent/prog")),
    )
    .await
    .unwrap_err();
    assert!(e.as_qmp().is_some_and(|q| q.is_qmp_error()), "{e}");
    assert!(e.to_string().contains("`/nonexistent/prog`"), "{e}");
}

#[tokio::test]
async fn other_calls_go_through_while_an_exec_waits_for_its_program() {
    let agent = agent_or_skip!();
    let client = connected(&agent).await;
    // The program runs until the test lets it go, so "still running" below is a fact,
    // not a matter of timing (a `sleep 1` would race a slow machine).
    let started = agent.dir().join("started");
    let go = agent.dir().join("go");
    let script = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.02; done; echo done",
        started.display(),
        go.display()
    );
    let program = Exec::new("/bin/sh")
        .args(["-c", &script])
        .poll_interval(Duration::from_millis(20));
    let running = {
        let client = client.clone();
        tokio::spawn(async move { guest::exec(&client, &program).await })
    };
    guard("the program to start", async {
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for _ in 0..5 {
        guard("guest-ping during exec", client.execute(&GuestPing))
            .await
            .unwrap();
    }
    let info = guard("guest-info during exec", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"));
    assert!(
        !running.is_finished(),
        "the exec ended before the program was let go"
    );
    std::fs::write(&go, b"").unwrap();
    let out = guard("the exec", running).await.unwrap().unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(out.stdout, b"done\n");
}

#[tokio::test]
async fn an_exec_timeout_names_the_program_and_pid_and_leaves_it_running() {
    let agent = agent_or_skip!();
    let client = connected(&agent).await;
    let program = Exec::new("/bin/sleep")
        .arg("30")
        .timeout(Some(Duration::from_millis(300)));
    let e = guard("exec with a timeout", guest::exec(&client, &program))
        .await
        .unwrap_err();
    let guest::Error::ExecTimeout {
        pid: Some(pid),
        limit,
        ..
    } = &e
    else {
        panic!("not a timeout with a pid: {e}");
    };
    assert_eq!(*limit, Duration::from_millis(300));
    let text = e.to_string();
    for part in [
        "`/bin/sleep`".to_owned(),
        format!("pid {pid}"),
        "within 300 ms".to_owned(),
        "may still be running".to_owned(),
        "qemu-ga has no command to kill it".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} not in {text}");
    }
    // It is still running (this agent runs on the host, so its pid is ours to
    // see): end it rather than leave it to the agent.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{text}"
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    // The connection is still good.
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_file_written_in_chunks_reads_back_the_same() {
    let agent = agent_or_skip!();
    let client = connected(&agent).await;
    // 100 KB that is not UTF-8 (every byte value, 0xFF included), in 7,000-byte
    // chunks: 15 writes and reads, the last one short.
    let data: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(std::str::from_utf8(&data).is_err());
    let path = agent.dir().join("copied.bin");
    let guest_path = path.to_str().unwrap();
    let transfer = Transfer::new().chunk_size(7_000);
    guard("write", transfer.write(&client, guest_path, &data))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The guest (this machine) has exactly those bytes…
    assert!(std::fs::read(&path).unwrap() == data);
    // …and they come back the same.
    let back = guard("read", transfer.read(&client, guest_path))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(back == data, "read back {} bytes", back.len());
    // With the default chunk too, and an empty file.
    let back = guard("read", guest::read_file(&client, guest_path))
        .await
        .unwrap();
    assert!(back == data);
    guard("write empty", guest::write_file(&client, guest_path, b""))
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert!(guard("read empty", guest::read_file(&client, guest_path))
        .await
        .unwrap()
        .is_empty());

    // A file that does not exist: qemu-ga's error, naming the path.
    let missing = agent.dir().join("missing");
    let e = guard(
        "read missing",
        guest::read_file(&client, missing.to_str().unwrap()),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(missing.to_str().unwrap()) && text.contains("guest-file-open"),
        "{text}"
    );
    // Every handle was closed: qemu-ga opens files with fresh handles, so a leak
    // would not show in a call; the agent's own fds do.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == &path)
        .count();
    assert_eq!(fds, 0, "qemu-ga still has {} open", path.display());
}
