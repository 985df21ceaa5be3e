//! Typed calls and a typed event `match` with bindings built for several releases
//! (`QMP_SCHEMA` listing QEMU 7.2's and 10.0's schemas), against the QEMU whose QMP
//! socket is the first argument. Built and run by `tests/cross_release.rs` in its own
//! crate (the bindings crate's default build has one release and no `availability`).
//!
//! Prints one line per check (`ok …`) and exits with 1 on the first failure.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use qemu_qapi::events::Event;
use qemu_qapi::qmp::blocking::Client;
use qemu_qapi::{commands, types};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("union-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let socket = std::env::args().nth(1).ok_or("usage: union-probe SOCKET")?;
    let client = Client::connect_unix(&qemu_qapi::qmp::Config::new(), &socket)?;
    let version = client.execute(&commands::QueryVersion)?;
    println!(
        "QEMU {}.{}.{}",
        version.qemu.major, version.qemu.minor, version.qemu.micro
    );

    // blockdev-add of a null-co node: a union argument built with the typed API.
    let node = "union-probe-null";
    let options = types::BlockdevOptions::new(types::BlockdevOptionsBranch::NullCo(
        types::BlockdevOptionsNull::default().with_size(1 << 20),
    ))
    .with_node_name(node.to_owned());
    client.execute(&commands::BlockdevAdd::new(options))?;
    let nodes = client.execute(&commands::QueryNamedBlockNodes::default())?;
    let added = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some(node))
        .ok_or("the null-co node is not in query-named-block-nodes")?;
    // `active` is 10.0's, absent in 7.2's reply: optional in the union.
    println!(
        "ok blockdev-add null-co: {} ({} bytes, active {:?})",
        added.drv, added.image.virtual_size, added.active
    );

    // stop after cont: the STOP event, matched on the typed enum.
    let mut events = client.subscribe_all::<Event>()?;
    client.execute(&commands::Cont)?;
    client.execute(&commands::Stop)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no STOP event within 20 s (saw {seen:?})").into());
        }
        match events.recv_timeout(left) {
            Some(Ok(Event::Stop)) => break,
            Some(Ok(Event::Resume)) => seen.push("RESUME".to_owned()),
            Some(Ok(other)) => seen.push(other.name().to_owned()),
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the connection closed before STOP".into()),
        }
    }
    println!("ok event Stop after {seen:?}");

    let status = client.execute(&commands::QueryStatus)?;
    println!(
        "ok query-status: {} (singlestep {:?})",
        status.status.as_str(),
        status.singlestep
    );
    let table = qemu_qapi::availability::TABLE;
    println!(
        "ok availability: query-status reply member singlestep in {:?}",
        table.reply_member("query-status", "singlestep")
    );
    client.close()?;
    Ok(())
}
