//! [`Error`]: what went wrong, with a [`ErrorKind`] and predicates.
//!
//! Shaped like tokio-postgres' error: an opaque, cheaply cloneable value (so the one
//! error that ended a connection can be handed to every caller that was waiting on it)
//! with a kind, a source, and accessors for the details of each kind.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::message::ErrorBody;

/// The broad category of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer closed the connection (end of stream), or the client closed it.
    Closed,
    /// Reading from or writing to the connection failed, or connecting failed.
    Io,
    /// The peer sent something that is not QMP: malformed JSON, a non-object, a
    /// truncated line, or a line over the configured maximum size.
    Protocol,
    /// The greeting or the capability negotiation failed.
    Handshake,
    /// The command ran and QEMU answered with an `error` reply.
    Qmp,
    /// The reply (or event) did not decode into the expected Rust type.
    Decode,
    /// The command's arguments failed to serialize.
    Encode,
    /// A deadline ran out: a call's timeout (no reply in time, see
    /// [`Error::timeout_stage`]) or one of the connection's own (connecting, the
    /// greeting, `qmp_capabilities`, a write, the keepalive; see
    /// [`Error::timeout_phase`]). The text names the phase and the limit. A write or
    /// keepalive deadline also closes the connection ([`Error::is_closed`]).
    Timeout,
    /// An event subscriber fell behind and missed events (see [`Error::missed_events`]),
    /// or may have missed some across a reconnection ([`Error::is_gap`]).
    Lagged,
    /// The operation is not possible on this connection (e.g. fds over TCP, `exec-oob`
    /// without the `oob` capability), or the peer's schema, already known, lacks the
    /// command, an argument member or an enum value the call uses: then nothing was
    /// sent, and [`Error::unsupported_by_peer`] says what is missing (see
    /// [`crate::peer`]).
    Unsupported,
    /// A schema probe query ([`crate::Client::supports_probe`]) is malformed; see
    /// [`Error::probe_error`].
    Probe,
}

/// How far a request had got when its call timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutStage {
    /// The request was never (completely) written: it was still queued behind other
    /// requests, or the peer stopped reading. If it was still queued, it will not be
    /// sent.
    NotSent,
    /// The request was written, but no reply came in time. A reply arriving later is
    /// dropped and logged, never delivered to another caller.
    Unanswered,
}

/// Which deadline ran out, for an [`ErrorKind::Timeout`] error
/// ([`Error::timeout_phase`]); each has its own setting on [`crate::Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the socket: connecting to it, or accepting QEMU's connection
    /// ([`crate::Config::socket_timeout`]).
    Connect,
    /// Waiting for QEMU's greeting ([`crate::Config::greeting_timeout`]). QEMU
    /// serves one client per monitor: a second client's connection is accepted by
    /// the kernel but gets no greeting until the first one leaves.
    Greeting,
    /// Waiting for the reply to `qmp_capabilities`
    /// ([`crate::Config::negotiation_timeout`]).
    Negotiation,
    /// Writing requests: QEMU stopped reading ([`crate::Config::write_timeout`]).
    /// This closes the connection.
    Write,
    /// Waiting for a call's reply ([`crate::Config::call_timeout`],
    /// [`crate::Client::with_timeout`]); see [`Error::timeout_stage`].
    Call,
    /// The keepalive went unanswered ([`crate::Config::keepalive`]): the peer was
    /// declared dead and the connection closed.
    Keepalive,
}

/// A QMP error reply, `{"error": {"class", "desc"}}`: the one a client receives
/// ([`Error::qmp_error`]) and the one a test server's handler answers with
/// (`qmp::server`, which re-exports this type), so an error can be built, served and
/// compared with what the client got.
///
/// Build one with [`new`](Self::new), [`generic`](Self::generic) or
/// [`command_not_found`](Self::command_not_found). Compare received and built errors
/// by [`class`](Self::class) and [`desc`](Self::desc): `==` also compares
/// [`raw`](Self::raw), which for a received error holds its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    /// The error class, e.g. `"GenericError"`, `"CommandNotFound"`.
    pub class: String,
    /// The description.
    pub desc: String,
    /// For an error received from a peer, the whole reply line as received (with its
    /// `id`). For one built by [`new`](Self::new) and its siblings, the reply line
    /// it stands for, without `id` (`{"error":{"class":…,"desc":…}}`), made when it
    /// was built: a server encodes its replies from `class` and `desc`, never from
    /// this, so changing those fields afterwards changes what is sent but not `raw`.
    pub raw: String,
}

impl QmpError {
    /// An error of class `class` (e.g. `DeviceNotFound`) with description `desc`.
    pub fn new(class: impl Into<String>, desc: impl Into<String>) -> QmpError {
        let (class, desc) = (class.into(), desc.into());
        let mut raw = Vec::with_capacity(32 + class.len() + desc.len());
        crate::message::write_error(&mut raw, &class, &desc, None);
        QmpError {
            class,
            desc,
            // serde_json writes UTF-8.
            raw: String::from_utf8(raw).unwrap_or_default(),
        }
    }

    /// A `GenericError`, QEMU's usual class.
    pub fn generic(desc: impl Into<String>) -> QmpError {
        QmpError::new(crate::schema_check::GENERIC_ERROR, desc)
    }

    /// A `CommandNotFound`.
    pub fn command_not_found(desc: impl Into<String>) -> QmpError {
        QmpError::new(crate::schema_check::COMMAND_NOT_FOUND, desc)
    }

    /// The error class, e.g. `"GenericError"`.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The description.
    pub fn desc(&self) -> &str {
        &self.desc
    }
}

impl From<crate::schema_check::Rejection> for QmpError {
    fn from(r: crate::schema_check::Rejection) -> QmpError {
        QmpError::new(r.class, r.desc)
    }
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl StdError for QmpError {}

/// How far a call's request had got when the connection it was on ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Not written at all: still queued, or the call was made after the end.
    NotSent,
    /// Partly written: QEMU may have read all of it.
    Writing,
    /// Written; no reply came.
    Sent,
}

#[derive(Debug)]
enum Detail {
    None,
    Message(String),
    Qmp(QmpError),
    Decode {
        path: String,
        raw: String,
    },
    /// A call's timeout and its limit; `partial` when the request was being
    /// written (stage `NotSent`, yet QEMU may read the rest and run it).
    Timeout {
        stage: TimeoutStage,
        limit: Duration,
        partial: bool,
    },
    /// A call refused before anything was written (`message` is the whole text),
    /// with the limit that ran out when it is a timeout.
    Unsent {
        message: String,
        limit: Option<Duration>,
    },
    /// A deadline of the connection itself: connecting, greeting, negotiation,
    /// writing, keepalive. `message` is the whole text; `closes` when running out
    /// of it ended the connection.
    Deadline {
        phase: Phase,
        limit: Duration,
        message: String,
        closes: bool,
    },
    /// QEMU went away (end of stream, connection reset, broken pipe): how it was
    /// noticed.
    PeerGone(String),
    /// The error that ended the connection, as one call sees it (with the call's
    /// command): how far its request had got, and what the layer that saw it adds
    /// (a reconnecting client: not retried).
    /// `progress` is `None` for an error that is not a connection's end (only a
    /// note added).
    ForCall {
        base: Error,
        progress: Option<Progress>,
        note: Option<String>,
    },
    Lagged(u64),
    /// Events may have been missed, how many is unknown (the connection was lost
    /// and re-established): why.
    Gap(String),
    /// A call refused before sending: what the peer lacks, and the full message.
    Refused {
        absent: String,
        message: String,
    },
}

struct Inner {
    kind: ErrorKind,
    command: Option<String>,
    detail: Detail,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// The error type of this crate.
///
/// Cloning is cheap (reference counted). Use [`kind`](Self::kind) or the predicates
/// (`is_closed()`, `is_timeout()`, …) to decide what to do, and the accessors for
/// details.
#[derive(Clone)]
pub struct Error(Arc<Inner>);

impl Error {
    fn new(kind: ErrorKind, command: Option<String>, detail: Detail) -> Self {
        Error(Arc::new(Inner {
            kind,
            command,
            detail,
            source: None,
        }))
    }

    fn with_source(
        kind: ErrorKind,
        command: Option<String>,
        detail: Detail,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error(Arc::new(Inner {
            kind,
            command,
            detail,
            source: Some(source.into()),
        }))
    }

    pub(crate) fn closed(why: &str) -> Self {
        Self::new(ErrorKind::Closed, None, Detail::Message(why.to_owned()))
    }

    pub(crate) fn io(context: &str, e: std::io::Error) -> Self {
        Self::with_source(ErrorKind::Io, None, Detail::Message(context.to_owned()), e)
    }

    pub(crate) fn protocol(msg: String) -> Self {
        Self::new(ErrorKind::Protocol, None, Detail::Message(msg))
    }

    pub(crate) fn protocol_with(
        msg: String,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::with_source(ErrorKind::Protocol, None, Detail::Message(msg), source)
    }

    pub(crate) fn handshake(msg: String) -> Self {
        Self::new(ErrorKind::Handshake, None, Detail::Message(msg))
    }

    pub(crate) fn qmp(command: &str, body: ErrorBody, raw: String) -> Self {
        Self::new(
            ErrorKind::Qmp,
            Some(command.to_owned()),
            Detail::Qmp(QmpError {
                class: body.class,
                desc: body.desc,
                raw,
            }),
        )
    }

    pub(crate) fn decode(
        command: &str,
        path: String,
        raw: String,
        source: serde_json::Error,
    ) -> Self {
        Self::with_source(
            ErrorKind::Decode,
            Some(command.to_owned()),
            Detail::Decode { path, raw },
            source,
        )
    }

    pub(crate) fn encode(command: &str, source: serde_json::Error) -> Self {
        Self::with_source(
            ErrorKind::Encode,
            Some(command.to_owned()),
            Detail::None,
            source,
        )
    }

    /// A call that timed out after `limit`.
    pub(crate) fn call_timeout(command: &str, stage: TimeoutStage, limit: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            Some(command.to_owned()),
            Detail::Timeout {
                stage,
                limit,
                partial: false,
            },
        )
    }

    /// A call that timed out after `limit` while its request was being written:
    /// stage `NotSent`, but QEMU may still read the rest and run it.
    pub(crate) fn call_timeout_writing(command: &str, limit: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            Some(command.to_owned()),
            Detail::Timeout {
                stage: TimeoutStage::NotSent,
                limit,
                partial: true,
            },
        )
    }

    /// This error with a call timeout's limit replaced by `limit` (other errors
    /// unchanged): for a layer whose own deadline was handed down as what was left of
    /// it (a reconnecting client's handle timeout covers the wait and the call).
    pub(crate) fn with_call_limit(&self, limit: Duration) -> Self {
        match &self.0.detail {
            Detail::Timeout { stage, partial, .. } if self.0.source.is_none() => Self::new(
                self.0.kind,
                self.0.command.clone(),
                Detail::Timeout {
                    stage: *stage,
                    limit,
                    partial: *partial,
                },
            ),
            _ => self.clone(),
        }
    }

    /// No event arrived within `limit` (a blocking subscription's `recv_timeout`).
    pub(crate) fn event_timeout(limit: Duration) -> Self {
        Self::waited(
            "event",
            format!("no event arrived within {}", Limit(limit)),
            None,
        )
    }

    /// A call of `command` that was not sent (nothing written), of kind `kind`:
    /// `message` is the whole text; `limit` the call's timeout when that is what
    /// ran out (kind [`ErrorKind::Timeout`]); `source` the last error met while
    /// waiting, if any.
    pub(crate) fn not_sent(
        kind: ErrorKind,
        command: &str,
        message: String,
        limit: Option<Duration>,
        source: Option<Error>,
    ) -> Self {
        let detail = Detail::Unsent { message, limit };
        let command = Some(command.to_owned());
        match source {
            Some(e) => Self::with_source(kind, command, detail, e),
            None => Self::new(kind, command, detail),
        }
    }

    /// A deadline of the connection ran out: `message` is the whole text (it names
    /// the phase, the peer and `limit`); `closes` when it ends the connection (then
    /// [`is_closed`](Self::is_closed) is true too).
    pub(crate) fn deadline(
        phase: Phase,
        limit: Duration,
        command: Option<&str>,
        message: String,
        closes: bool,
    ) -> Self {
        Self::new(
            ErrorKind::Timeout,
            command.map(str::to_owned),
            Detail::Deadline {
                phase,
                limit,
                message,
                closes,
            },
        )
    }

    /// QEMU closed the connection: at the end of the stream (`source` `None`, kind
    /// [`ErrorKind::Closed`]) or with an I/O error such as a reset or a broken pipe
    /// (kind [`ErrorKind::Io`]). `how` says where it was noticed.
    pub(crate) fn peer_gone(how: &str, source: Option<std::io::Error>) -> Self {
        let detail = Detail::PeerGone(how.to_owned());
        match source {
            Some(e) => Self::with_source(ErrorKind::Io, None, detail, e),
            None => Self::new(ErrorKind::Closed, None, detail),
        }
    }

    /// This error (one that ended the connection) as the call of `command` sees
    /// it: same kind and details, the command named first with how far its request
    /// had got.
    pub(crate) fn for_call(&self, command: &str, progress: Progress) -> Self {
        let base = match &self.0.detail {
            Detail::ForCall { base, .. } => base.clone(),
            _ => self.clone(),
        };
        Self::new(
            base.0.kind,
            Some(command.to_owned()),
            Detail::ForCall {
                base,
                progress: Some(progress),
                note: None,
            },
        )
    }

    /// This error with `note` appended to its text (kind, command and predicates
    /// unchanged), e.g. a reconnecting client saying that the call was not retried.
    pub(crate) fn with_note(&self, note: String) -> Self {
        let (base, progress) = match &self.0.detail {
            Detail::ForCall { base, progress, .. } => (base.clone(), *progress),
            _ => (self.clone(), None),
        };
        Self::new(
            base.0.kind,
            self.0.command.clone(),
            Detail::ForCall {
                base,
                progress,
                note: Some(note),
            },
        )
    }

    /// The details, looking through [`Detail::ForCall`].
    fn detail(&self) -> &Detail {
        match &self.0.detail {
            Detail::ForCall { base, .. } => &base.0.detail,
            d => d,
        }
    }

    /// The source, looking through [`Detail::ForCall`].
    fn source_ref(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match &self.0.detail {
            Detail::ForCall { base, .. } => base.0.source.as_deref(),
            _ => self.0.source.as_deref(),
        }
    }

    /// A wait that is not one call's: `what` says what was waited for and how long
    /// (e.g. a guest agent that never answered `guest-sync-delimited`); `source` is
    /// the last error met while waiting, if any.
    pub(crate) fn waited(command: &str, what: String, source: Option<Error>) -> Self {
        let (kind, command, detail) = (
            ErrorKind::Timeout,
            Some(command.to_owned()),
            Detail::Message(what),
        );
        match source {
            Some(e) => Self::with_source(kind, command, detail, e),
            None => Self::new(kind, command, detail),
        }
    }

    pub(crate) fn lagged(missed: u64) -> Self {
        Self::new(ErrorKind::Lagged, None, Detail::Lagged(missed))
    }

    /// A subscriber may have missed an unknown number of events (of kind
    /// [`ErrorKind::Lagged`], with [`Error::is_gap`]): `why` says what happened,
    /// e.g. "the connection to QEMU was lost at … and re-established".
    pub(crate) fn gap(why: String) -> Self {
        Self::new(ErrorKind::Lagged, None, Detail::Gap(why))
    }

    pub(crate) fn unsupported(msg: String) -> Self {
        Self::new(ErrorKind::Unsupported, None, Detail::Message(msg))
    }

    /// A call refused because the peer's schema lacks `absent` (e.g. `member
    /// 'driver' value 'foo'`); `message` names the command and the peer.
    pub(crate) fn refused(command: &str, absent: String, message: String) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            Some(command.to_owned()),
            Detail::Refused { absent, message },
        )
    }

    /// The peer's `query-qmp-schema` reply is not a schema this crate can read.
    pub(crate) fn bad_schema(source: crate::schema_check::SchemaError) -> Self {
        Self::with_source(
            ErrorKind::Decode,
            Some("query-qmp-schema".to_owned()),
            Detail::Message("the reply is not an introspection schema".to_owned()),
            source,
        )
    }

    pub(crate) fn probe(source: crate::probe::ProbeError) -> Self {
        Self::with_source(
            ErrorKind::Probe,
            None,
            Detail::Message("malformed query".to_owned()),
            source,
        )
    }

    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// True when the connection is gone: the peer closed it, the client closed it, an
    /// I/O error or a protocol violation ended it, or a deadline that closes it ran
    /// out (a write QEMU did not take in time, an unanswered keepalive: then
    /// [`is_timeout`](Self::is_timeout) is true as well). Every call pending at that
    /// moment, and every later call, fails with the error that ended the connection
    /// (naming its own command).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::Closed | ErrorKind::Io | ErrorKind::Protocol
        ) || matches!(self.detail(), Detail::Deadline { closes: true, .. })
    }

    /// True when a deadline ran out: a call's timeout (see
    /// [`timeout_stage`](Self::timeout_stage)) or one of the connection's own
    /// (connecting, greeting, negotiation, writing, keepalive); see
    /// [`timeout_phase`](Self::timeout_phase).
    pub fn is_timeout(&self) -> bool {
        self.0.kind == ErrorKind::Timeout
    }

    /// For [`ErrorKind::Timeout`]: which deadline ran out (a call's own timeout is
    /// `Phase::Call`).
    pub fn timeout_phase(&self) -> Option<Phase> {
        match self.detail() {
            Detail::Timeout { .. } => Some(Phase::Call),
            Detail::Unsent { limit: Some(_), .. } => Some(Phase::Call),
            Detail::Deadline { phase, .. } => Some(*phase),
            _ => None,
        }
    }

    /// For [`ErrorKind::Timeout`]: the limit that ran out (also in the text).
    pub fn timeout_limit(&self) -> Option<Duration> {
        match self.detail() {
            Detail::Timeout { limit, .. } => Some(*limit),
            Detail::Unsent { limit, .. } => *limit,
            Detail::Deadline { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// True when a call's request was written, or may have been (partly written),
    /// and no reply came: the connection ended before the reply
    /// ([`is_closed`](Self::is_closed)), the call timed out after sending
    /// ([`TimeoutStage::Unanswered`]) or while writing, or a
    /// [`crate::reconnect::ReconnectingClient`] lost the connection during the call.
    /// QEMU may have run the command: check its effect before calling again (a
    /// `device_del` or `migrate` must not run twice blindly).
    ///
    /// False for an error reply (the command ran and failed: [`ErrorKind::Qmp`]), a
    /// reply that did not decode (it ran), and errors before the write
    /// ([`is_not_sent`](Self::is_not_sent)).
    pub fn may_have_run(&self) -> bool {
        match &self.0.detail {
            Detail::ForCall {
                progress: Some(p), ..
            } => *p != Progress::NotSent,
            Detail::Timeout { stage, partial, .. } => {
                *stage == TimeoutStage::Unanswered || *partial
            }
            _ => false,
        }
    }

    /// True when a call failed before any of its request was written, so QEMU did
    /// not run it and calling again is safe: refused by the peer's schema
    /// ([`unsupported_by_peer`](Self::unsupported_by_peer)) or not possible on this
    /// connection ([`ErrorKind::Unsupported`]), arguments that do not serialize
    /// ([`ErrorKind::Encode`]), a call made on (or queued when) the connection
    /// closed, a call timeout while still queued, or a
    /// [`crate::reconnect::ReconnectingClient`] call that got no connection.
    pub fn is_not_sent(&self) -> bool {
        match &self.0.detail {
            Detail::ForCall {
                progress: Some(p), ..
            } => *p == Progress::NotSent,
            Detail::ForCall { progress: None, .. } => false,
            Detail::Timeout { stage, partial, .. } => *stage == TimeoutStage::NotSent && !*partial,
            Detail::Unsent { .. } | Detail::Refused { .. } => true,
            _ => matches!(self.0.kind, ErrorKind::Unsupported | ErrorKind::Encode),
        }
    }

    /// True when the keepalive ([`crate::Config::keepalive`]) went unanswered and the
    /// peer was declared dead (also [`is_timeout`](Self::is_timeout) and
    /// [`is_closed`](Self::is_closed)).
    pub fn is_peer_dead(&self) -> bool {
        self.timeout_phase() == Some(Phase::Keepalive)
    }

    /// True when QEMU closed the connection (end of stream, connection reset, broken
    /// pipe), as opposed to the client closing it or a protocol error.
    pub fn is_peer_gone(&self) -> bool {
        matches!(self.detail(), Detail::PeerGone(_))
    }

    /// True when QEMU answered with an error reply; see [`qmp_error`](Self::qmp_error).
    pub fn is_qmp_error(&self) -> bool {
        self.0.kind == ErrorKind::Qmp
    }

    /// True when a reply or event did not decode into its Rust type.
    pub fn is_decode(&self) -> bool {
        self.0.kind == ErrorKind::Decode
    }

    /// True for [`ErrorKind::Unsupported`]: the operation is not possible on this
    /// connection, or the peer lacks what the call uses (nothing was sent; see
    /// [`unsupported_by_peer`](Self::unsupported_by_peer)).
    pub fn is_unsupported(&self) -> bool {
        self.0.kind == ErrorKind::Unsupported
    }

    /// For a call refused before sending because the peer's schema lacks something:
    /// what, e.g. `the command`, `member 'file.aio-max-batch'` or `member 'driver'
    /// value 'foo'` (the command is [`command`](Self::command)).
    pub fn unsupported_by_peer(&self) -> Option<&str> {
        match self.detail() {
            Detail::Refused { absent, .. } => Some(absent),
            _ => None,
        }
    }

    /// For [`ErrorKind::Probe`]: what is wrong with the query, and where.
    pub fn probe_error(&self) -> Option<&crate::probe::ProbeError> {
        self.source_ref()?.downcast_ref()
    }

    /// True when an event subscriber missed events; see
    /// [`missed_events`](Self::missed_events).
    pub fn is_lagged(&self) -> bool {
        self.0.kind == ErrorKind::Lagged
    }

    /// The command this error is about, when it is about one.
    pub fn command(&self) -> Option<&str> {
        self.0.command.as_deref()
    }

    /// QEMU's error reply, for [`ErrorKind::Qmp`].
    pub fn qmp_error(&self) -> Option<&QmpError> {
        match self.detail() {
            Detail::Qmp(e) => Some(e),
            _ => None,
        }
    }

    /// For a call's timeout (phase `Call`): whether the request had been sent.
    pub fn timeout_stage(&self) -> Option<TimeoutStage> {
        match self.detail() {
            Detail::Timeout { stage, .. } => Some(*stage),
            Detail::Unsent { limit: Some(_), .. } => Some(TimeoutStage::NotSent),
            _ => None,
        }
    }

    /// True when a subscriber may have missed events without knowing how many (the
    /// connection was lost and re-established): a [`ErrorKind::Lagged`] error whose
    /// [`missed_events`](Self::missed_events) is `None`. Whatever state the
    /// subscriber tracks from events should be queried again.
    pub fn is_gap(&self) -> bool {
        matches!(self.detail(), Detail::Gap(_))
    }

    /// For [`ErrorKind::Lagged`]: how many events the subscriber missed (`None` for
    /// a gap, [`is_gap`](Self::is_gap)).
    pub fn missed_events(&self) -> Option<u64> {
        match self.detail() {
            Detail::Lagged(n) => Some(*n),
            _ => None,
        }
    }

    /// For [`ErrorKind::Decode`]: the serde path of the member that failed (e.g.
    /// `return.qemu.major`; `.` when the top level failed).
    pub fn decode_path(&self) -> Option<&str> {
        match self.detail() {
            Detail::Decode { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The raw JSON received, for [`ErrorKind::Qmp`] and [`ErrorKind::Decode`].
    pub fn raw(&self) -> Option<&str> {
        match self.detail() {
            Detail::Qmp(e) => Some(&e.raw),
            Detail::Decode { raw, .. } => Some(raw),
            _ => None,
        }
    }

    /// The underlying I/O error, if this is one.
    pub fn as_io(&self) -> Option<&std::io::Error> {
        self.source_ref()?.downcast_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = self.0.command.as_deref().unwrap_or("?");
        match &self.0.detail {
            Detail::Qmp(e) => write!(f, "QMP error from `{cmd}`: {}: {}", e.class, e.desc)?,
            Detail::Decode { path, raw } => {
                const MAX: usize = 2000;
                let shown = if raw.len() > MAX {
                    let mut end = MAX;
                    while !raw.is_char_boundary(end) {
                        end -= 1;
                    }
                    format!("{}… ({} bytes)", &raw[..end], raw.len())
                } else {
                    raw.clone()
                };
                write!(
                    f,
                    "cannot decode the reply of `{cmd}` at `{path}`; reply: {shown}"
                )?
            }
            Detail::Timeout {
                stage: TimeoutStage::NotSent,
                limit,
                partial: false,
            } => write!(
                f,
                "`{cmd}` was not sent within {} (the call's timeout): it was still queued \
                 behind other requests, and will not be sent",
                Limit(*limit)
            )?,
            Detail::Timeout {
                stage: TimeoutStage::NotSent,
                limit,
                partial: true,
            } => write!(
                f,
                "`{cmd}` was not completely written within {} (the call's timeout): QEMU \
                 stopped reading; it may still run if QEMU reads the rest",
                Limit(*limit)
            )?,
            Detail::Timeout {
                stage: TimeoutStage::Unanswered,
                limit,
                ..
            } => write!(
                f,
                "`{cmd}` was sent but not answered within {} (the call's timeout)",
                Limit(*limit)
            )?,
            Detail::Unsent { message, .. } => f.write_str(message)?,
            Detail::Deadline { message, .. } => f.write_str(message)?,
            Detail::PeerGone(how) => {
                write!(f, "QEMU closed the connection ({how}")?;
                if let Some(source) = &self.0.source {
                    write!(f, ": {source}")?;
                }
                return f.write_str(")");
            }
            Detail::ForCall {
                base,
                progress,
                note,
            } => {
                match progress {
                    Some(p) => write_call_end(f, cmd, *p, base)?,
                    None => write!(f, "{base}")?,
                }
                if let Some(note) = note {
                    write!(f, "; {note}")?;
                }
                return Ok(());
            }
            Detail::Lagged(n) => write!(f, "event subscriber lagged behind: {n} events missed")?,
            Detail::Gap(why) => write!(
                f,
                "events may have been missed: {why}; query again whatever state you track from events"
            )?,
            Detail::Refused { message, .. } => write!(f, "unsupported: {message}")?,
            Detail::Message(m) => {
                let what = match self.0.kind {
                    ErrorKind::Closed => "connection closed",
                    ErrorKind::Io => "I/O error",
                    ErrorKind::Protocol => "QMP protocol error",
                    ErrorKind::Handshake => "QMP handshake failed",
                    ErrorKind::Unsupported => "unsupported",
                    ErrorKind::Decode => "cannot decode the reply of `query-qmp-schema`",
                    ErrorKind::Probe => "schema probe",
                    ErrorKind::Timeout => "timed out",
                    _ => "error",
                };
                write!(f, "{what}: {m}")?
            }
            Detail::None => match self.0.kind {
                ErrorKind::Encode => write!(f, "cannot serialize the arguments of `{cmd}`")?,
                k => write!(f, "{k:?}")?,
            },
        }
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

/// How a call's error reads when the connection ended under it: what became of the
/// request, then why the connection ended (`base`).
fn write_call_end(
    f: &mut fmt::Formatter<'_>,
    cmd: &str,
    progress: Progress,
    base: &Error,
) -> fmt::Result {
    // "QEMU closed the connection" is said once, with how it was noticed.
    let peer_gone = match &base.0.detail {
        Detail::PeerGone(how) => Some(how),
        _ => None,
    };
    match (progress, peer_gone) {
        (Progress::NotSent, _) => return write!(f, "`{cmd}` was not sent: {base}"),
        (Progress::Sent, Some(_)) => write!(
            f,
            "`{cmd}` was sent, but QEMU closed the connection before answering (it may have run): "
        )?,
        (Progress::Writing, Some(_)) => write!(
            f,
            "`{cmd}` was being written when QEMU closed the connection (it may have run): "
        )?,
        (Progress::Sent, None) => {
            return write!(
            f,
            "`{cmd}` was sent, but the connection ended before its reply (it may have run): {base}"
        )
        }
        (Progress::Writing, None) => {
            return write!(
                f,
                "`{cmd}` was being written when the connection ended (it may have run): {base}"
            )
        }
    }
    if let Some(how) = peer_gone {
        f.write_str(how)?;
        if let Some(source) = &base.0.source {
            write!(f, ": {source}")?;
        }
    }
    Ok(())
}

/// A duration as this crate's error texts show it: `5 s`, `2.5 s`, `200 ms` (sub-
/// millisecond ones as `Duration`'s `Debug` does, `1.5µs`). For programs and crates
/// built on `qmp` whose own messages name a limit, so that they read like ours:
/// `format!("no reply within {}", qmp::Limit(timeout))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Duration);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d >= Duration::from_secs(1) {
            let ms = d.as_millis();
            if ms % 1000 == 0 {
                write!(f, "{} s", ms / 1000)
            } else {
                // Trailing zeros dropped: 2.5 s, 1.25 s.
                let text = format!("{:.3}", d.as_secs_f64());
                write!(f, "{} s", text.trim_end_matches('0'))
            }
        } else if d.subsec_nanos() % 1_000_000 == 0 {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{d:?}")
        }
    }
}

/// `{:?}` gives the message and the kind, `Error(Io): connecting to /run/qmp.sock: No
/// such file or directory (os error 2)`, so that what `main` returning
/// `Result<(), qmp::Error>` prints on failure, and what `unwrap` panics with, read as
/// the message does; `{:#?}` gives the fields (kind, command, detail, source).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return write!(f, "Error({:?}): {self}", self.0.kind);
        }
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("command", &self.0.command)
            .field("detail", &self.0.detail)
            .field("source", &self.0.source)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

/// `Result<T, qmp::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_display() {
        let e = Error::qmp(
            "stop",
            ErrorBody {
                class: "GenericError".into(),
                desc: "nope".into(),
            },
            "{\"error\":{}}".into(),
        );
        assert!(e.is_qmp_error() && !e.is_closed() && !e.is_timeout());
        assert_eq!(e.qmp_error().unwrap().class, "GenericError");
        assert_eq!(e.command(), Some("stop"));
        assert_eq!(e.to_string(), "QMP error from `stop`: GenericError: nope");
        assert!(!e.may_have_run() && !e.is_not_sent());
        let t = Error::call_timeout("x", TimeoutStage::NotSent, Duration::from_secs(2));
        assert!(t.is_timeout() && t.is_not_sent() && !t.may_have_run());
        assert_eq!(t.timeout_stage(), Some(TimeoutStage::NotSent));
        let w = Error::call_timeout_writing("x", Duration::from_secs(2));
        assert!(w.may_have_run() && !w.is_not_sent());
        assert_eq!(w.timeout_stage(), Some(TimeoutStage::NotSent));
        let io = Error::io("read", std::io::Error::other("boom"));
        assert!(io.is_closed());
        assert!(io.as_io().is_some());
        assert_eq!(io.to_string(), "I/O error: read: boom");
        assert_eq!(Error::lagged(3).missed_events(), Some(3));
        let clone = io.clone();
        assert_eq!(clone.kind(), ErrorKind::Io);
    }

    #[test]
    fn limits_read_as_people_write_them() {
        let shown = |d| Limit(d).to_string();
        assert_eq!(shown(Duration::from_secs(5)), "5 s");
        assert_eq!(shown(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(shown(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(shown(Duration::from_millis(200)), "200 ms");
        assert_eq!(shown(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn a_pending_call_sees_the_connection_error_with_its_command() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let gone = Error::peer_gone("connection reset while reading", Some(reset));
        let mine = gone.for_call("query-status", Progress::Sent);
        assert_eq!(mine.command(), Some("query-status"));
        assert!(mine.is_closed() && mine.is_peer_gone() && !mine.is_timeout());
        assert!(mine.may_have_run() && !mine.is_not_sent());
        assert_eq!(mine.kind(), ErrorKind::Io);
        assert!(mine.as_io().is_some());
        assert!(mine.to_string().starts_with(
            "`query-status` was sent, but QEMU closed the connection before answering (it \
             may have run): connection reset while reading: "
        ));
        // Wrapping again names the new command once, not both.
        assert_eq!(
            mine.for_call("stop", Progress::NotSent).to_string(),
            gone.for_call("stop", Progress::NotSent).to_string()
        );
        let queued = gone.for_call("stop", Progress::NotSent);
        assert!(queued.is_not_sent() && !queued.may_have_run());
        assert!(queued
            .to_string()
            .starts_with("`stop` was not sent: QEMU closed the connection (connection reset"));
        let noted = mine.with_note("not retried".into());
        assert!(noted.may_have_run() && noted.is_peer_gone());
        assert_eq!(noted.to_string(), format!("{mine}; not retried"));
        let dead = Error::deadline(
            Phase::Keepalive,
            Duration::from_secs(2),
            None,
            "dead".into(),
            true,
        )
        .for_call("stop", Progress::Sent);
        assert!(dead.is_peer_dead() && dead.is_timeout() && dead.is_closed());
        assert_eq!(dead.timeout_limit(), Some(Duration::from_secs(2)));
        assert_eq!(
            dead.to_string(),
            "`stop` was sent, but the connection ended before its reply (it may have run): dead"
        );
        let call = Error::call_timeout("x", TimeoutStage::Unanswered, Duration::from_secs(5));
        assert_eq!(
            call.to_string(),
            "`x` was sent but not answered within 5 s (the call's timeout)"
        );
        assert_eq!(call.timeout_phase(), Some(Phase::Call));
        assert!(!call.is_closed());
    }
}
