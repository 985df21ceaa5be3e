//! The guest agent's replies round-trip through the bindings, as the QMP examples do
//! (`tests/qmp_examples.rs`): every read-only command of QEMU 10.0's guest agent is
//! sent to the real `qemu-ga` (run on the host in a private directory), and each
//! reply must decode as the command's typed reply and encode back to the same JSON.
//!
//! Why real replies rather than the schema's examples: the guest agent's schema has
//! no `qmp-example` of a message in any release we read (3.1–10.0; QEMU 10.0's one
//! block shows the notation, `-> ... text sent by client ...`, and the examples
//! test checks that it is the only one), so the replies of a real agent are what
//! shows the bindings fit the agent. A host is not a guest, so a few commands fail
//! here (e.g. `guest-get-devices` is Windows-only); those must fail with the agent's
//! error reply, not with a decoding error, and most of the list must answer.
//!
//! Only commands that change nothing are sent: on the host, `guest-fsfreeze-freeze`,
//! `guest-shutdown`, `guest-set-*` and the like would act on this machine.
#![cfg(all(feature = "qga", feature = "cli"))]

#[path = "support/qemu_ga.rs"]
mod qemu_ga;
#[path = "support/skip.rs"]
mod skip;

use qemu_qapi::qmp::runtime::CommandVisitor;
use qemu_qapi::qmp::Command;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Every command of QEMU 10.0's guest agent that reads and changes nothing, with no
/// required argument.
const READ_ONLY: &[&str] = &[
    "guest-info",
    "guest-ping",
    "guest-get-time",
    "guest-get-osinfo",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-get-users",
    "guest-get-vcpus",
    "guest-get-memory-blocks",
    "guest-get-memory-block-info",
    "guest-network-get-interfaces",
    "guest-network-get-route",
    "guest-get-fsinfo",
    "guest-get-disks",
    "guest-get-diskstats",
    "guest-get-cpustats",
    "guest-get-load",
    "guest-fsfreeze-status",
    "guest-get-devices",
];

/// Decodes a reply as `C::Reply` and encodes it back.
struct ReplyRoundTrip<'a>(&'a Value);

impl CommandVisitor for ReplyRoundTrip<'_> {
    type Output = Result<(), String>;
    fn visit<C>(self) -> Result<(), String>
    where
        C: Command + DeserializeOwned,
        C::Reply: Serialize,
    {
        let typed: C::Reply = serde_json::from_value(self.0.clone()).map_err(|e| {
            format!(
                "does not decode as {}: {e}",
                std::any::type_name::<C::Reply>()
            )
        })?;
        let back = serde_json::to_value(&typed).map_err(|e| format!("does not encode: {e}"))?;
        // `{}` and no value are the same reply to a command without one.
        let empty = |v: &Value| v.is_null() || v == &Value::Object(Default::default());
        if back == *self.0 || (empty(&back) && empty(self.0)) {
            Ok(())
        } else {
            Err(format!(
                "re-encodes differently:\n  sent {}\n  back {back}",
                self.0
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_only_reply_of_the_real_agent_round_trips() {
    let Some(program) = qemu_ga::program() else {
        skip::skipping("qemu-ga is not installed: the round trip of its replies");
        return;
    };
    let agent = qemu_ga::Agent::start(program);
    let client = qemu_ga::guard("connecting", agent.connect()).await;
    let mut answered = Vec::new();
    let mut refused = Vec::new();
    let mut failures = Vec::new();
    for &name in READ_ONLY {
        assert!(
            qemu_qapi::ga::commands::COMMANDS
                .iter()
                .any(|c| c.name == name),
            "{name} is not in the guest agent's bindings"
        );
        let reply = qemu_ga::guard(name, client.execute_raw::<Value>(name, None)).await;
        match reply {
            Ok(reply) => {
                match qemu_qapi::ga::commands::visit_command(name, ReplyRoundTrip(&reply)) {
                    Some(Ok(())) => answered.push(name),
                    Some(Err(e)) => failures.push(format!("{name}: {e}")),
                    None => failures.push(format!("{name}: no such command in the bindings")),
                }
            }
            // The agent's own refusal (not supported on this host): fine, but it
            // must be the agent's error reply, nothing else.
            Err(e) if e.qmp_error().is_some() => refused.push(format!("{name}: {e}")),
            Err(e) => failures.push(format!("{name}: the call failed: {e}")),
        }
    }
    println!(
        "round-tripped ({}): {}",
        answered.len(),
        answered.join(", ")
    );
    println!("refused by the agent on this host ({}):", refused.len());
    for r in &refused {
        println!("  {r}");
    }
    assert!(
        failures.is_empty(),
        "replies that do not round-trip:\n{}",
        failures.join("\n")
    );
    // The host answers nearly all of them (QEMU 10.0's qemu-ga on Linux: all but
    // guest-get-devices, and on some hosts the memory-block ones); fewer means the
    // test is not testing.
    assert!(
        answered.len() >= READ_ONLY.len() - 4,
        "only {} of {} commands answered: {refused:?}",
        answered.len(),
        READ_ONLY.len()
    );
}
