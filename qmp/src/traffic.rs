//! Traffic hooks: being told about every message of a connection, in order, as it
//! crosses the wire (for transcripts, auditing, debugging).
//!
//! The client calls a hook set with [`crate::Config::traffic_hook`]; the test server
//! ([`qmp::server`][server], feature `server`) calls one set on its builder. Both use
//! the same trait, so the transcript [`Recorder`][recorder] records either side.
//!
//! On the client, the hook sees the greeting and every line read during
//! negotiation, the `qmp_capabilities` request, then every line the reader task
//! reads (replies, events, anything else) and every request sent (one call per
//! request, also when several are coalesced into one write), including the
//! keepalive's (`crate::Config::keepalive`). With no hook set the cost is one
//! `Option` check per message.
//!
//! # When, where, in which order
//!
//! * **A request is reported before its reply** (and before any event that follows
//!   it on the wire): it is reported by the task of the caller that sends it, before
//!   its bytes are written or queued for the writer task, so QEMU cannot have
//!   answered it yet.
//! * **Lines read** are reported by the reader task, in wire order, each before it
//!   is acted on: before a reply reaches its caller, before an event reaches its
//!   subscribers. So once a call has returned, the hook has seen its request and its
//!   reply.
//! * **Requests** are reported in the order their callers send them. Two callers
//!   racing may be reported in the other order than their requests are written (the
//!   writer decides that after the report), and a request whose call is cancelled
//!   (dropped or timed out) while still queued behind others is reported but never
//!   written.
//! * **No lock of the connection is held** while a hook runs, so a hook may call
//!   back into the client: [`crate::Client::state`], `is_closed`, start calls on
//!   other tasks, even (in [`TrafficHook::message`] for a request, on a multi-threaded
//!   runtime) block until another call it started has completed: that call is
//!   written and answered by other tasks. A hook must not wait for a reply while
//!   reporting a line *read*: it runs on the reader task, which would have to read
//!   that reply.
//! * Hook calls may run concurrently (a caller reporting a request while the reader
//!   reports a reply), hence `Sync`. An implementation that takes the time on entry
//!   (as the `Recorder` does) timestamps the message within microseconds of its
//!   crossing the wire.
//!
// The links exist only with the `server` feature: without it they point at the crate root.
#![cfg_attr(feature = "server", doc = "[server]: crate::server")]
#![cfg_attr(
    feature = "server",
    doc = "[recorder]: crate::server::transcript::Recorder"
)]
#![cfg_attr(not(feature = "server"), doc = "[server]: crate")]
#![cfg_attr(not(feature = "server"), doc = "[recorder]: crate")]

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: requests (`"c2s"` in transcripts).
    ToServer,
    /// Server to client: the greeting, replies and events (`"s2c"`).
    ToClient,
}

impl Direction {
    /// The name in transcripts: `"c2s"` or `"s2c"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "c2s",
            Direction::ToClient => "s2c",
        }
    }
}

impl Serialize for Direction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Direction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        match &*name {
            "c2s" => Ok(Direction::ToServer),
            "s2c" => Ok(Direction::ToClient),
            other => Err(serde::de::Error::unknown_variant(other, &["c2s", "s2c"])),
        }
    }
}

/// Told about every message of a session, as the raw JSON line (no terminator).
///
/// Implementations should be cheap: lines read are reported from the connection's
/// reader task, which reads nothing else meanwhile, and requests from the task of
/// the caller sending them. No lock of the connection is held during the call; see
/// the [module documentation](self) for the order guaranteed and what a hook may
/// call back into.
pub trait TrafficHook: Send + Sync + 'static {
    /// One message went `dir`. `line` is the JSON text as sent or received.
    fn message(&self, dir: Direction, line: &str);
}

/// An optional hook, as a connection holds it.
#[derive(Clone, Default)]
pub(crate) struct HookSlot(pub(crate) Option<Arc<dyn TrafficHook>>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl HookSlot {
    /// Reports a line read from the peer.
    #[inline]
    pub(crate) fn received(&self, line: &str) {
        if let Some(h) = &self.0 {
            h.message(Direction::ToClient, line);
        }
    }

    /// Reports a request written to the peer (`bytes` is one encoded line, with or
    /// without its terminator).
    #[inline]
    pub(crate) fn sent(&self, bytes: &[u8]) {
        if let Some(h) = &self.0 {
            let text = String::from_utf8_lossy(bytes);
            h.message(Direction::ToServer, text.trim_end());
        }
    }
}
