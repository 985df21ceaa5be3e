//! A typed call, and what its errors say.
//!
//! Takes the path of a QEMU's QMP socket as its only argument (it starts no QEMU of its
//! own), e.g.:
//!
//! ```sh
//! qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! cargo run --example typed_call -- /tmp/qmp.sock
//! ```
//!
//! It prints QEMU's version and run state, then makes a call QEMU refuses
//! (`block_resize` of a node that does not exist) and prints the parts of the error.
//! `tests/examples.rs` runs it against `qemu-system-x86_64 -M none`.

use std::process::ExitCode;
use std::time::Duration;

use qemu_qapi::commands;
use qemu_qapi::qmp;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, qmp::Error> {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: typed_call QMP-SOCKET (see the top of examples/typed_call.rs)");
        return Ok(ExitCode::from(2));
    };

    // Every call of this client gives up after 10 s (the default is to wait for ever).
    let client = qmp::Config::new()
        .call_timeout(Some(Duration::from_secs(10)))
        .connect_unix(&socket)
        .await?;

    // The command is a struct, its reply a typed value: the compiler checks both.
    let version = client.execute(&commands::QueryVersion {}).await?;
    let v = &version.qemu;
    println!("QEMU {}.{}.{}", v.major, v.minor, v.micro);
    let status = client.execute(&commands::QueryStatus {}).await?;
    println!("status: {:?}, running: {}", status.status, status.running);

    // A per-handle timeout, for one slow call (the clone shares the connection).
    let patient = client.with_timeout(Some(Duration::from_secs(60)));
    patient.execute(&commands::QueryCommands {}).await?;

    // QEMU refuses this one: the error says which command and what QEMU answered.
    let resize = commands::BlockResize::new(1 << 30).with_node_name("no-such-node");
    match client.execute(&resize).await {
        Ok(_) => println!("block_resize: done"),
        Err(e) if e.is_qmp_error() => {
            let reply = e.qmp_error().expect("a QMP error has its reply");
            println!(
                "QEMU refused {}: {}",
                e.command().unwrap_or("?"),
                reply.class
            );
            println!("  desc: {}", reply.desc);
            println!("  as text: {e}");
        }
        Err(e) if e.is_timeout() => println!("no reply in time: {e}"),
        // Closed, I/O, decode errors: the connection (or the bindings) are at fault.
        Err(e) => return Err(e),
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
