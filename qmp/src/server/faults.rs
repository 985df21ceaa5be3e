//! Fault injection: ways the test server can misbehave on purpose.
//!
//! Set with [`super::ServerBuilder::faults`] or switched at run time with
//! [`super::Server::set_faults`] (new values apply from the next message on, to every
//! session). Faults that concern replies hit the replies to commands other than
//! `qmp_capabilities` (so a client can always connect), optionally only those of one
//! command ([`Faults::only_command`]).

use std::time::Duration;

/// What to do instead of the normal greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreetingFault {
    /// Send nothing and keep the connection open (a client waiting for the greeting
    /// must time out).
    Missing,
    /// Close the connection without a word.
    Close,
    /// Send a line that is not JSON.
    Garbage,
    /// Send valid JSON that is not a greeting (`{"return": {}}`).
    NotAGreeting,
    /// Send this line verbatim as the greeting.
    Custom(String),
}

/// The set of faults a server injects; everything off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Replace the greeting.
    pub greeting: Option<GreetingFault>,
    /// Wait this long before sending each affected reply.
    pub reply_delay: Option<Duration>,
    /// Send the first half of the next affected reply, then close the connection.
    pub close_mid_reply: bool,
    /// Send a line of invalid JSON instead of each affected reply.
    pub malformed_reply: bool,
    /// Before each affected reply, send an `OVERSIZED` event padded to this many bytes.
    pub oversized_line: Option<usize>,
    /// Before each affected reply, send a reply with an id that no request used.
    pub unknown_id_reply: bool,
    /// Send each affected reply twice.
    pub duplicate_reply: bool,
    /// Hold in-band replies and release them in reverse order, this many at a time
    /// (or fewer, after 200 ms without a new one). The server then reads requests
    /// ahead, as QEMU does with `oob` enabled.
    pub out_of_order: Option<usize>,
    /// Right after a successful `qmp_capabilities`, send this many `FLOOD` events
    /// (`{"event": "FLOOD", "data": {"n": i}}`), interleaved with whatever else the
    /// session sends.
    pub event_flood: Option<u64>,
    /// Stop reading requests once this many have been read after negotiation (0: read
    /// nothing after `qmp_capabilities`), so the client's writes eventually block.
    pub never_read_after: Option<u64>,
    /// Restrict the reply faults to replies to this command.
    pub only_command: Option<String>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Whether the reply faults apply to a reply to `command`.
    pub(crate) fn applies_to(&self, command: &str) -> bool {
        command != "qmp_capabilities" && self.only_command.as_deref().is_none_or(|c| c == command)
    }
}
