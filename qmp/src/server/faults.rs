//! Fault injection: ways the test server can misbehave on purpose.
//!
//! Set with [`super::ServerBuilder::faults`] or switched at run time with
//! [`super::Server::set_faults`] (new values apply from the next message on, to every
//! session). Faults that concern replies hit the replies to commands other than
//! `qmp_capabilities` and `guest-sync-delimited` (so a client can always connect and
//! synchronise), optionally only those of one command ([`Faults::only_command`], which
//! may also name one of those two to target it).
//!
//! Some faults mimic what a guest agent does ([`ServerBuilder::guest_agent`]), though
//! they work in both modes: [`Faults::preamble`] (what an earlier client left in the
//! stream), [`Faults::strip_reply_ids`] (an old agent), [`Faults::garbage_before_reply`],
//! [`Faults::late_start`] (the agent not running yet) and [`Faults::close_after`] (the
//! agent killed mid-call). Parse-error replies (to a 0xFF, say) belong to no command,
//! so no reply fault touches them.
//!
//! [`ServerBuilder::guest_agent`]: super::ServerBuilder::guest_agent

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
    /// Restrict the reply faults (and [`close_after`](Self::close_after)) to this
    /// command.
    pub only_command: Option<String>,
    /// Write these bytes as they are (no terminator added) as soon as a client
    /// connects, before anything else: e.g. a reply meant for an earlier client of a
    /// guest agent and a partial line, `{"return": {}, "id": 7}\n{"return": {"stal`.
    pub preamble: Option<Vec<u8>>,
    /// Remove the `id` member from every reply (an old guest agent that ignores
    /// ids): a property of the agent, so it also applies to the replies the other
    /// reply faults spare (`guest-sync-delimited`'s, from which a client learns
    /// whether ids are echoed) and is not narrowed by [`Faults::only_command`].
    pub strip_reply_ids: bool,
    /// Before each affected reply, send this line (terminator added; any bytes, e.g.
    /// not UTF-8).
    pub garbage_before_reply: Option<Vec<u8>>,
    /// Accept the connection but read, answer and greet nothing for this long; then
    /// read what the client wrote meanwhile and answer all of it in order (a guest
    /// agent started after the VM, whose virtio-serial port held the client's bytes).
    /// Counted from each connection's accept.
    pub late_start: Option<Duration>,
    /// Answer this many affected requests, then close the connection on reading the
    /// next one without answering it (an agent killed mid-call). Counted per
    /// connection; requests to exempt commands (see the module docs) and unparsable
    /// ones are not counted.
    pub close_after: Option<u64>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Whether the reply faults apply to a reply to `command`: the handshake commands
    /// only when named by `only_command`.
    pub(crate) fn applies_to(&self, command: &str) -> bool {
        match self.only_command.as_deref() {
            Some(only) => only == command,
            None => !matches!(command, "qmp_capabilities" | "guest-sync-delimited"),
        }
    }
}
