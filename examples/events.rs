//! Events: one typed `match` over every event, and waiting for the event a command
//! causes.
//!
//! Takes the path of a QEMU's QMP socket as its only argument (it starts no QEMU of its
//! own), e.g.:
//!
//! ```sh
//! qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! cargo run --example events -- /tmp/qmp.sock
//! ```
//!
//! It stops the VM, waiting for QEMU's `STOP`, then lets it run again and prints every
//! event until `RESUME`. The VM is left running. `tests/examples.rs` runs it against
//! `qemu-system-x86_64 -M none`.

use std::process::ExitCode;
use std::time::Duration;

use qemu_qapi::events::{self, Event};
use qemu_qapi::{commands, qmp};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, qmp::Error> {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: events QMP-SOCKET (see the top of examples/events.rs)");
        return Ok(ExitCode::from(2));
    };
    let client = qmp::connect_unix(&socket).await?;

    // Subscribe before sending the commands whose events you want: events are not
    // replayed to later subscriptions.
    let mut all = client.subscribe_all::<Event>();

    // One event, race-free: `execute_and_wait` subscribes before it sends, so a STOP
    // that arrives before the reply still counts.
    let (_reply, _stop) = client
        .execute_and_wait(&commands::Stop {}, |_: &events::Stop| true)
        .await?;
    println!("stopped");
    client.execute(&commands::Cont {}).await?;

    // Every event, typed. Bound the wait: a stream waits as long as the connection lives.
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), all.next()).await;
        let Ok(Some(event)) = next else {
            eprintln!("no RESUME within 10 s");
            return Ok(ExitCode::FAILURE);
        };
        match event {
            Ok(Event::Stop) => println!("event STOP"),
            Ok(Event::Resume) => {
                println!("event RESUME");
                break;
            }
            Ok(Event::JobStatusChange(change)) => {
                println!("job {} is now {:?}", change.id, change.status)
            }
            // Events these bindings do not know arrive as `Event::Unknown`, with their name.
            Ok(other) => println!("event {}", other.name()),
            // The buffer (1024 events) overflowed: how many were missed, never a silent gap.
            Err(e) if e.is_lagged() => eprintln!("missed {:?} events", e.missed_events()),
            Err(e) => return Err(e),
        }
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
