//! The blocking client, for programs without async Rust: the same calls and events,
//! without `.await`.
//!
//! Takes the path of a QEMU's QMP socket as its only argument (it starts no QEMU of its
//! own), e.g.:
//!
//! ```sh
//! qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! cargo run --example blocking -- /tmp/qmp.sock
//! ```
//!
//! It prints QEMU's version, stops the VM and waits for `STOP`, then lets it run again
//! and waits for `RESUME`. `tests/examples.rs` runs it against
//! `qemu-system-x86_64 -M none`.

use std::process::ExitCode;
use std::time::Duration;

use qemu_qapi::qmp::blocking::Client;
use qemu_qapi::{commands, events, qmp};

fn main() -> Result<ExitCode, qmp::Error> {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: blocking QMP-SOCKET (see the top of examples/blocking.rs)");
        return Ok(ExitCode::from(2));
    };
    // The client runs its connection on a thread of its own: events are received while
    // this thread does something else. (Inside an async runtime its methods refuse to
    // block, with an error: use the async client there.) `Client::connect_unix` takes a
    // `qmp::Config` for timeouts and the like.
    let client = Client::connect(&socket)?;
    let version = client.execute(&commands::QueryVersion {})?;
    println!(
        "QEMU {}.{}.{}",
        version.qemu.major, version.qemu.minor, version.qemu.micro
    );

    // As in async code: subscribed before sending, so the STOP cannot be missed.
    client.execute_and_wait(&commands::Stop {}, |_: &events::Stop| true)?;
    println!("stopped");

    // Or subscribe first and read the stream with a deadline.
    let mut resumed = client.subscribe::<events::Resume>()?;
    client.execute(&commands::Cont {})?;
    match resumed.recv_timeout(Duration::from_secs(10)) {
        Some(Ok(events::Resume)) => println!("resumed"),
        Some(Err(e)) if e.is_timeout() => {
            eprintln!("no RESUME within 10 s");
            return Ok(ExitCode::FAILURE);
        }
        Some(Err(e)) => return Err(e),
        None => {
            eprintln!("QEMU closed the connection before RESUME");
            return Ok(ExitCode::FAILURE);
        }
    }
    client.close()?;
    Ok(ExitCode::SUCCESS)
}
