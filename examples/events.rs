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
use qemu_qapi::qmp::Stamped;
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

    // Every event, typed, with the time QEMU stamped on it (`next` gives the event
    // alone). Bound the wait: a stream waits as long as the connection lives.
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), all.next_stamped()).await;
        let Ok(Some(item)) = next else {
            eprintln!("no RESUME within 10 s");
            return Ok(ExitCode::FAILURE);
        };
        let Stamped { timestamp, event } = match item {
            Ok(stamped) => stamped,
            // The buffer (1024 events) overflowed: how many were missed, never a silent gap.
            Err(e) if e.is_lagged() => {
                eprintln!("missed {:?} events", e.missed_events());
                continue;
            }
            Err(e) => return Err(e),
        };
        let at = format!("{}.{:06}", timestamp.seconds, timestamp.microseconds);
        match event {
            Event::Stop => println!("event STOP at {at}"),
            Event::Resume => {
                println!("event RESUME at {at}");
                break;
            }
            Event::JobStatusChange(change) => {
                println!("job {} is now {:?}", change.id, change.status)
            }
            // Events these bindings do not know arrive as `Event::Unknown`, with their name.
            other => println!("event {} at {at}", other.name()),
        }
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
