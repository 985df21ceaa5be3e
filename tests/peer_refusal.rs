//! Refusal before sending, with QEMU 10.0's bindings against QEMU 7.2 (`qmp::peer`).
//!
//! QEMU 7.2 (unpacked by `scripts/setup-old-qemu` into `target/old-qemu/7.2`; the
//! test prints a line and returns without it) runs `-M none`. Once the client knows
//! its schema, typed calls of commands these bindings have and 7.2 lacks, or with an
//! argument member or enum value 7.2 lacks, fail with `ErrorKind::Unsupported` and
//! never reach QEMU: the client's traffic hook, which sees every request as it is
//! written to the socket, records none of them. Every command both have is sent and
//! answered. Run with `cargo test --features server --test peer_refusal`.
#![cfg(feature = "server")]

#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qemu_qapi::commands;
use qemu_qapi::qmp;
use qemu_qapi::types::{MigrationCapability, MigrationCapabilityStatus};
use qmp::local::{LocalQemu, OldQemu, System};
use qmp::traffic::{Direction, TrafficHook};
use qmp::{Command, Config};

/// The commands of every request the client wrote.
#[derive(Default)]
struct Written(Mutex<Vec<String>>);

impl TrafficHook for Written {
    fn message(&self, dir: Direction, line: &str) {
        if dir == Direction::ToServer {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let name = v["execute"].as_str().unwrap_or("?").to_owned();
            self.0.lock().unwrap().push(name);
        }
    }
}

impl Written {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Runs a typed call and says what became of it.
fn outcome<C: Command>(client: &qmp::blocking::Client, cmd: &C) -> Result<(), qmp::Error> {
    client.execute(cmd).map(drop)
}

#[test]
fn commands_qemu_72_lacks_are_refused_unsent_and_shared_ones_are_answered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/old-qemu/7.2");
    let old = match OldQemu::open(&dir) {
        Ok(old) => old,
        Err(e) => {
            skip::skipping(&format!(
                "QEMU 7.2 is not unpacked (scripts/setup-old-qemu): {e}"
            ));
            return;
        }
    };
    let mut qemu = LocalQemu::system(&System::new("none").release(&old)).expect("QEMU 7.2");
    qemu.wait_for_socket(Duration::from_secs(10))
        .expect("QEMU 7.2 listening");
    let written = Arc::new(Written::default());
    let client = qmp::blocking::Client::connect_unix(
        Config::new().traffic_hook(written.clone()),
        qemu.socket(),
    )
    .expect("connecting");
    assert_eq!(client.greeting().qmp.version.qemu.minor, 2);

    // Before the schema is known, nothing is refused (and nothing fetched for it).
    let e = outcome(&client, &commands::QueryAudiodevs).unwrap_err();
    assert_eq!(
        e.qmp_error().expect("QEMU's answer").class,
        "CommandNotFound"
    );

    assert!(client.supports::<commands::QueryStatus>().unwrap());
    let before = written.names();
    assert_eq!(
        before,
        ["qmp_capabilities", "query-audiodevs", "query-qmp-schema"]
    );

    // Commands 10.0's bindings know and 7.2 lacks: refused, none written.
    let lacking: Vec<(&str, Result<(), qmp::Error>)> = vec![
        (
            "blockdev-set-active",
            outcome(&client, &commands::BlockdevSetActive::new(true)),
        ),
        (
            "device-sync-config",
            outcome(&client, &commands::DeviceSyncConfig::new("x")),
        ),
        (
            "query-hv-balloon-status-report",
            outcome(&client, &commands::QueryHvBalloonStatusReport),
        ),
        (
            "query-audiodevs",
            outcome(&client, &commands::QueryAudiodevs),
        ),
        (
            "query-cryptodev",
            outcome(&client, &commands::QueryCryptodev),
        ),
    ];
    for (name, result) in lacking {
        let e = result.expect_err(name);
        assert!(e.is_unsupported(), "{name}: {e}");
        assert_eq!(e.command(), Some(name));
        assert_eq!(e.unsupported_by_peer(), Some("the command"));
        let text = e.to_string();
        assert!(
            text.contains("QEMU 7.2.") && text.contains(name) && text.contains("not sent"),
            "{text}"
        );
        assert!(!client.supports_probe(name).unwrap(), "{name}");
    }
    // A command both have, with an enum value only 10.0 has (mapped-ram, 9.0).
    let e = outcome(
        &client,
        &commands::MigrateSetCapabilities::new(vec![MigrationCapabilityStatus::new(
            MigrationCapability::MappedRam,
            true,
        )]),
    )
    .unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    assert_eq!(
        e.unsupported_by_peer(),
        Some("member 'capabilities[0].capability' value 'mapped-ram'")
    );
    assert_eq!(written.names(), before, "nothing refused was written");

    // Commands both have: sent and answered.
    outcome(&client, &commands::QueryStatus).unwrap();
    outcome(&client, &commands::QueryVersion).unwrap();
    outcome(&client, &commands::QueryName).unwrap();
    outcome(&client, &commands::QueryKvm).unwrap();
    outcome(
        &client,
        &commands::MigrateSetCapabilities::new(vec![MigrationCapabilityStatus::new(
            MigrationCapability::Events,
            true,
        )]),
    )
    .unwrap();
    assert_eq!(
        written.names()[before.len()..],
        [
            "query-status",
            "query-version",
            "query-name",
            "query-kvm",
            "migrate-set-capabilities"
        ]
    );
    client.close().unwrap();
}
