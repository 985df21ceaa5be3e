//! Connection set-up: [`Config`], connecting and accepting, the greeting and the
//! capability negotiation, all before the connection is split into background tasks.
//!
//! Every set-up function is cancellation-safe: until it returns a [`Client`], it owns
//! the socket, so dropping its future (or hitting its timeout) closes the socket and
//! leaves nothing half-open.
//!
//! # Deadlines
//!
//! Each phase has its own deadline, and [`Config::connect_timeout`] bounds them all
//! together; whichever ends first applies, and the error names the phase, the peer
//! and the limit that ran out:
//!
//! | phase | setting | default | error text (e.g.) |
//! |---|---|---|---|
//! | opening the socket | [`Config::socket_timeout`] | 10 s | could not connect to /run/qmp.sock within 10 s: … |
//! | greeting | [`Config::greeting_timeout`] | 5 s | no greeting within 5 s from /run/qmp.sock: QEMU serves one client per monitor; is another client connected? |
//! | `qmp_capabilities` | [`Config::negotiation_timeout`] | 10 s | \`qmp_capabilities\` not answered within 10 s by /run/qmp.sock: … |
//! | all of them | [`Config::connect_timeout`] | 30 s | no greeting within the connect timeout (30 s) from … |
//! | every write, later | [`Config::write_timeout`] | 10 s | could not write to /run/qmp.sock within 10 s: … (closes the connection) |
//!
//! Why these defaults: QEMU sends its greeting as soon as it accepts a client
//! (milliseconds), so a greeting that has not come within 5 s almost always means
//! another client holds the monitor (QEMU serves one client per monitor socket; the
//! kernel accepts a second connection, which then waits, silent, until the first
//! leaves); 5 s rather than 1–2 s leaves room for a loaded host. `qmp_capabilities`
//! runs on QEMU's main loop, which may be busy while QEMU starts, hence 10 s. A
//! write only waits when the socket's buffer (hundreds of KiB) is full, i.e. when
//! QEMU has stopped reading; 10 s of that is a stopped or hung QEMU, and the
//! connection is closed, since a half-written request leaves the stream unusable.
//!
//! The error kind is [`crate::ErrorKind::Timeout`] (`is_timeout()`); its
//! `timeout_phase()` says which phase, `timeout_limit()` the limit. A socket that
//! cannot be opened at once (refused, absent) stays an [`crate::ErrorKind::Io`]
//! error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs, UnixListener, UnixStream};

use crate::client::Client;
use crate::codec::{CodecError, LineReader, LineWriter, DEFAULT_MAX_LINE};
use crate::connection::{self, ReadHalf, TaskOptions, WriteHalf};
use crate::error::{Error, Limit, Phase, Result};
use crate::fanout::Overflow;
use crate::message::{parse_error_body, write_request, ExecKind, Greeting, Incoming};
use crate::state::{ConnectionState, ConnectionStateWatch, StateCell};
use crate::traffic::{HookSlot, TrafficHook};
use crate::unix;

/// The default number of events buffered per subscriber before it lags.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// The default time allowed for connecting plus the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time allowed for the socket to connect (or be accepted).
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed for QEMU's greeting, once connected.
pub const DEFAULT_GREETING_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time allowed for the reply to `qmp_capabilities`.
pub const DEFAULT_NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed for one write once connected.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection options, a builder: `Config::new().call_timeout(d).connect_unix(path)`.
///
/// A `Config` also owns a connection state ([`Config::watch_connection_state`]) that the connections made
/// with it update, so a watcher created before connecting sees `Connecting` too.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) socket_timeout: Option<Duration>,
    pub(crate) greeting_timeout: Option<Duration>,
    pub(crate) negotiation_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) max_message: usize,
    pub(crate) event_capacity: usize,
    pub(crate) event_overflow: Overflow,
    pub(crate) negotiate_oob: bool,
    pub(crate) fetch_peer_schema: bool,
    pub(crate) refuse_unsupported: bool,
    pub(crate) state: StateCell,
    pub(crate) hook: HookSlot,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// Defaults: 30 s connect timeout overall, of which at most 10 s for the socket,
    /// 5 s for the greeting and 10 s for `qmp_capabilities` (see the table in
    /// [`connect_timeout`](Self::connect_timeout)); 10 s per write; no keepalive; no
    /// call timeout; 16 MiB maximum message, 1024 buffered events per subscriber,
    /// `oob` negotiated when offered, the peer's schema fetched only when asked for,
    /// and typed calls refused before sending when the (known) schema lacks what
    /// they use.
    pub fn new() -> Self {
        Config {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            socket_timeout: Some(DEFAULT_SOCKET_TIMEOUT),
            greeting_timeout: Some(DEFAULT_GREETING_TIMEOUT),
            negotiation_timeout: Some(DEFAULT_NEGOTIATION_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            keepalive: None,
            call_timeout: None,
            max_message: DEFAULT_MAX_LINE,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            event_overflow: Overflow::DropNewest,
            negotiate_oob: true,
            fetch_peer_schema: false,
            refuse_unsupported: true,
            state: StateCell::new(),
            hook: HookSlot::default(),
        }
    }

    /// Time allowed for connecting (or accepting) plus greeting and negotiation, all
    /// together (default 30 s); `None`: only the phases' own deadlines apply.
    ///
    /// Each phase also has its own deadline; whichever ends first applies, and the
    /// error ([`crate::ErrorKind::Timeout`]) names the phase, the peer and the limit:
    ///
    /// | phase | setting | default |
    /// |---|---|---|
    /// | connecting the socket, or accepting QEMU's connection | [`socket_timeout`](Self::socket_timeout) | 10 s |
    /// | QEMU's greeting | [`greeting_timeout`](Self::greeting_timeout) | 5 s |
    /// | the reply to `qmp_capabilities` | [`negotiation_timeout`](Self::negotiation_timeout) | 10 s |
    ///
    /// E.g. a second client on a monitor another client holds gets: "no greeting
    /// within 5 s from /run/qmp.sock: QEMU serves one client per monitor; is another
    /// client connected?".
    pub fn connect_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.connect_timeout = t;
        self
    }

    /// Time allowed for the socket to connect ([`connect_unix`](Self::connect_unix),
    /// [`connect_tcp`](Self::connect_tcp): a TCP peer that drops packets) or for QEMU
    /// to connect ([`accept_unix`](Self::accept_unix),
    /// [`accept_tcp`](Self::accept_tcp)); default 10 s, `None`: only the connect
    /// timeout applies. A socket that is absent or refuses fails at once with an
    /// I/O error, not this.
    pub fn socket_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.socket_timeout = t;
        self
    }

    /// Time allowed for QEMU's greeting once the socket is connected; default 5 s,
    /// `None`: only the connect timeout applies.
    ///
    /// QEMU greets at once; what makes it wait is another client: QEMU serves one
    /// client per monitor socket, and a second connection is accepted by the kernel
    /// but gets no greeting until the first client leaves. The error says so: "no
    /// greeting within 5 s from /run/qmp.sock: QEMU serves one client per monitor;
    /// is another client connected?". (QEMU stopped with `SIGSTOP` looks the same.)
    pub fn greeting_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.greeting_timeout = t;
        self
    }

    /// Time allowed for sending `qmp_capabilities` and getting its reply; default
    /// 10 s (it runs on QEMU's main loop, which may be busy while QEMU starts),
    /// `None`: only the connect timeout applies.
    pub fn negotiation_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.negotiation_timeout = t;
        self
    }

    /// Time allowed for each write once connected (the writer task's, of up to
    /// 256 KiB of queued requests); default 10 s, `None`: forever.
    ///
    /// A write only waits when the socket's buffer is full, i.e. QEMU stopped
    /// reading (stopped, hung, or its monitor suspended behind a long command with
    /// many requests queued). When one does not complete in time, **the connection
    /// is closed**: a half-written request leaves the stream unusable, since there
    /// is no way to finish it or to send anything after it. Every pending call then
    /// fails with an error that is both [`is_timeout`](crate::Error::is_timeout) and
    /// [`is_closed`](crate::Error::is_closed): "`query-status`: could not write to
    /// /run/qmp.sock within 10 s: QEMU stopped reading (…); the connection is closed,
    /// since a half-written request leaves the stream unusable".
    pub fn write_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.write_timeout = t;
        self
    }

    /// Checks that QEMU is alive when the connection is quiet: after every
    /// `interval` in which nothing was read from QEMU, sends `query-version` and
    /// expects an answer within `deadline` (each at least 1 ms). Off by default.
    ///
    /// `query-version` has no effect on QEMU (it reads constants), exists in every
    /// QEMU and `qemu-storage-daemon`, is allowed in every run state and answers in a
    /// few hundred bytes. It runs in-band on QEMU's main loop, like the calls it
    /// guards, so an answer means QEMU can still run commands. It therefore waits
    /// behind an in-band command that is running: choose a `deadline` longer than
    /// the longest command you run (or none of those run while the connection is
    /// otherwise silent).
    ///
    /// When it goes unanswered, the peer is declared dead: the connection is closed,
    /// every pending call fails at once with an error that is
    /// [`is_peer_dead`](crate::Error::is_peer_dead), [`is_timeout`](crate::Error::is_timeout)
    /// and [`is_closed`](crate::Error::is_closed) ("`query-status`: QEMU did not
    /// answer the keepalive (`query-version`, sent after 10 s of silence) within 5 s
    /// on /run/qmp.sock: declared dead; the connection is closed"), the connection state
    /// goes `Disconnecting` → `Idle`, and later calls fail at once with it.
    ///
    /// The keepalive's requests and replies reach the [traffic hook](Self::traffic_hook)
    /// like any other.
    pub fn keepalive(&mut self, interval: Duration, deadline: Duration) -> &mut Self {
        let min = Duration::from_millis(1);
        self.keepalive = Some((interval.max(min), deadline.max(min)));
        self
    }

    /// Turns the keepalive off (the default).
    pub fn no_keepalive(&mut self) -> &mut Self {
        self.keepalive = None;
        self
    }

    /// Default timeout for every call on the client (override per call with
    /// [`Client::with_timeout`]); `None` (the default) waits forever.
    pub fn call_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.call_timeout = t;
        self
    }

    /// Maximum size of one incoming message in bytes (default 16 MiB,
    /// [`DEFAULT_MAX_LINE`]). A longer line ends the connection with a protocol error.
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes;
        self
    }

    /// How many events each subscription buffers before the [`Overflow`] policy
    /// applies (default 1024). Memory is bounded by about twice this times the event
    /// size per subscription (the buffer, plus what the stream has taken from it and
    /// not yet yielded).
    pub fn event_capacity(&mut self, n: usize) -> &mut Self {
        self.event_capacity = n.max(1);
        self
    }

    /// What subscriptions do when their buffer is full, unless set per subscription
    /// with [`crate::EventStream::overflow`]: count the events that do not fit as
    /// missed ([`Overflow::DropNewest`], the default: replies never wait for a slow
    /// subscriber) or make the connection wait ([`Overflow::Backpressure`]: nothing is
    /// lost, but replies wait too). See [`Overflow`] for the trade-off.
    pub fn event_overflow(&mut self, overflow: Overflow) -> &mut Self {
        self.event_overflow = overflow;
        self
    }

    /// Whether to enable the `oob` capability when the server offers it (default
    /// true). With it, QEMU keeps reading while a command runs (so requests pipeline)
    /// and `exec-oob` commands can overtake in-band ones.
    pub fn negotiate_oob(&mut self, yes: bool) -> &mut Self {
        self.negotiate_oob = yes;
        self
    }

    /// Whether connecting also fetches the peer's schema (`query-qmp-schema`, one
    /// round trip) before returning the client (default false: fetched by the first
    /// [`Client::peer_schema`] or `supports*` call). With it, typed calls are checked
    /// against the peer from the first one (see [`crate::peer`]). The fetch counts
    /// towards the connect timeout; if it fails, connecting fails.
    pub fn fetch_peer_schema(&mut self, yes: bool) -> &mut Self {
        self.fetch_peer_schema = yes;
        self
    }

    /// Whether typed calls ([`Client::execute`] and its siblings) are refused with
    /// [`crate::ErrorKind::Unsupported`], without sending them, when the peer's schema
    /// is known and lacks the command, an argument member or an enum value they use
    /// (default true; it never causes a fetch, and only absence is refused: see
    /// [`crate::peer`]). [`Client::with_refusal`] changes it per handle.
    pub fn refuse_unsupported(&mut self, yes: bool) -> &mut Self {
        self.refuse_unsupported = yes;
        self
    }

    /// Tells `hook` about every message of the connections made with this `Config`:
    /// the greeting, the negotiation, every request written (one call per request)
    /// and every line read (replies, events), each at the moment it crosses the wire.
    /// A [`Recorder`][recorder] writes them to a transcript file that
    /// [`qmp::server`][server] can replay (feature `server`). See [`crate::traffic`].
    ///
    // The links exist only with the feature: without it they point at the crate root.
    #[cfg_attr(
        feature = "server",
        doc = "[recorder]: crate::server::transcript::Recorder"
    )]
    #[cfg_attr(feature = "server", doc = "[server]: crate::server")]
    #[cfg_attr(not(feature = "server"), doc = "[recorder]: crate")]
    #[cfg_attr(not(feature = "server"), doc = "[server]: crate")]
    pub fn traffic_hook(&mut self, hook: Arc<dyn TrafficHook>) -> &mut Self {
        self.hook = HookSlot(Some(hook));
        self
    }

    /// A watcher of the [`ConnectionState`] of the connections made with this
    /// `Config` (and its clones), created before connecting so it sees `Connecting`
    /// too. With several connections at once it follows whichever changed last; use
    /// [`Client::watch_connection_state`] to follow one connection.
    pub fn watch_connection_state(&self) -> ConnectionStateWatch {
        self.state.watch()
    }

    /// The old name of [`watch_connection_state`](Self::watch_connection_state).
    #[deprecated(note = "renamed to `Config::watch_connection_state`")]
    pub fn run_state(&self) -> ConnectionStateWatch {
        self.watch_connection_state()
    }

    /// Connects to a QMP Unix socket.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when connecting fails, [`crate::ErrorKind::Handshake`]
    /// when the peer does not speak QMP, [`crate::ErrorKind::Timeout`] when it takes
    /// longer than the connect timeout.
    pub async fn connect_unix(&self, path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref().to_owned();
        let peer = path.display().to_string();
        self.setup(
            Opening::Connect,
            async move {
                let stream = UnixStream::connect(&path)
                    .await
                    .map_err(|e| Error::io(&format!("connecting to {}", path.display()), e))?;
                split_unix(stream)
            },
            peer,
        )
        .await
    }

    /// Connects to a QMP TCP socket.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_tcp(&self, addr: impl ToSocketAddrs) -> Result<Client> {
        // Resolved first, so that errors name the address (under the socket
        // deadline: a resolver can hang too).
        let limit = self.socket_timeout.or(self.connect_timeout);
        let lookup = tokio::net::lookup_host(addr);
        let resolved = match limit {
            Some(t) => tokio::time::timeout(t, lookup).await.map_err(|_| {
                Error::deadline(
                    Phase::Connect,
                    t,
                    None,
                    format!(
                        "could not resolve the address to connect to within {}",
                        Limit(t)
                    ),
                    false,
                )
            })?,
            None => lookup.await,
        };
        let addrs: Vec<std::net::SocketAddr> = resolved
            .map_err(|e| Error::io("resolving the address to connect to", e))?
            .collect();
        let peer = match addrs.as_slice() {
            [] => {
                return Err(Error::io(
                    "resolving the address to connect to",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "it resolves to no address",
                    ),
                ))
            }
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (or {} more addresses)", rest.len()),
        };
        let what = format!("connecting to {peer}");
        self.setup(
            Opening::Connect,
            async move {
                let stream = TcpStream::connect(addrs.as_slice())
                    .await
                    .map_err(|e| Error::io(&what, e))?;
                let _ = stream.set_nodelay(true);
                Ok(split_other(stream))
            },
            peer,
        )
        .await
    }

    /// Speaks QMP over an already connected stream (a socket pair, an in-memory
    /// `tokio::io::duplex`, a TLS stream…). File descriptors cannot be passed over it
    /// (use [`connect_unix_stream`](Self::connect_unix_stream) for a Unix socket).
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_stream<S>(&self, stream: S) -> Result<Client>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.setup(
            Opening::Given,
            async move { Ok(split_other(stream)) },
            "stream".into(),
        )
        .await
    }

    /// Speaks QMP over a connected Unix stream (fd passing available).
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_unix_stream(&self, stream: UnixStream) -> Result<Client> {
        let peer = stream
            .peer_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "unix-stream".into());
        self.setup(Opening::Given, async move { split_unix(stream) }, peer)
            .await
    }

    /// Waits for QEMU to connect to `listener` (QEMU started with a client-mode
    /// monitor, e.g. `-chardev socket,path=P,server=off`), then handshakes. The
    /// listener stays usable for further connections.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn accept_unix(&self, listener: &UnixListener) -> Result<Client> {
        let peer = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "accepted-unix".into());
        self.setup(
            Opening::Accept,
            async move {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| Error::io("accepting a connection", e))?;
                split_unix(stream)
            },
            peer,
        )
        .await
    }

    /// Like [`accept_unix`](Self::accept_unix), over TCP.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn accept_tcp(&self, listener: &TcpListener) -> Result<Client> {
        let peer = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "accepted-tcp".into());
        self.setup(
            Opening::Accept,
            async move {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| Error::io("accepting a connection", e))?;
                let _ = stream.set_nodelay(true);
                Ok(split_other(stream))
            },
            peer,
        )
        .await
    }

    /// Runs `open` and the handshake, each phase under its deadline and all under the
    /// connect timeout, keeping the connection state.
    async fn setup(
        &self,
        opening: Opening,
        open: impl std::future::Future<Output = Result<(ReadHalf, WriteHalf)>>,
        peer: String,
    ) -> Result<Client> {
        let state = self.state.child();
        state.set(ConnectionState::Connecting);
        // Back to Idle however this ends, unless it ends connected (also on drop).
        let mut guard = IdleOnDrop(Some(&state));
        let overall = self
            .connect_timeout
            .map(|t| (tokio::time::Instant::now() + t, t));
        let (r, w) = within(open, self.socket_timeout, overall, |w| {
            Error::deadline(
                Phase::Connect,
                w.limit,
                None,
                match opening {
                    Opening::Connect => format!(
                        "could not connect to {peer} within {w}: is QEMU running, with its \
                         monitor listening there?"
                    ),
                    Opening::Accept => format!(
                        "QEMU did not connect to {peer} within {w}: did it start, with its \
                         monitor pointed at this socket?"
                    ),
                    Opening::Given => format!("the stream to {peer} was not ready within {w}"),
                },
                false,
            )
        })
        .await?;
        let mut reader = LineReader::with_max_line(r, self.max_message);
        let mut writer = LineWriter::new(w);
        let greeting = within(
            read_greeting(&mut reader, &self.hook),
            self.greeting_timeout,
            overall,
            |w| {
                Error::deadline(
                    Phase::Greeting,
                    w.limit,
                    None,
                    format!(
                        "no greeting within {w} from {peer}: QEMU serves one client per \
                         monitor; is another client connected?"
                    ),
                    false,
                )
            },
        )
        .await?;
        let oob = within(
            negotiate(
                &mut reader,
                &mut writer,
                &greeting,
                self.negotiate_oob,
                &self.hook,
            ),
            self.negotiation_timeout,
            overall,
            |w| {
                Error::deadline(
                    Phase::Negotiation,
                    w.limit,
                    Some("qmp_capabilities"),
                    format!(
                        "`qmp_capabilities` not answered within {w} by {peer}: is QEMU \
                         stopped, or its main loop blocked?"
                    ),
                    false,
                )
            },
        )
        .await?;
        tracing::debug!(target: "qmp::connection", %peer, ?greeting, oob, "connected");
        let (shared, tx) = connection::spawn(
            reader,
            writer,
            TaskOptions {
                event_capacity: self.event_capacity,
                event_overflow: self.event_overflow,
                greeting,
                oob,
                state: state.clone(),
                peer: peer.clone(),
                hook: self.hook.clone(),
                write_timeout: self.write_timeout,
                keepalive: self.keepalive,
            },
        );
        guard.0 = None;
        state.set(ConnectionState::Running);
        let client = Client::new(shared, tx, self.call_timeout, self.refuse_unsupported);
        if self.fetch_peer_schema {
            let fetched = within(client.peer_schema(), None, overall, |w| {
                Error::deadline(
                    Phase::Call,
                    w.limit,
                    Some("query-qmp-schema"),
                    format!(
                        "`query-qmp-schema` (fetching the peer's schema at connect) not \
                         answered within {w} by {peer}"
                    ),
                    false,
                )
            })
            .await;
            if let Err(e) = fetched {
                client.close().await;
                return Err(e);
            }
        }
        Ok(client)
    }
}

struct IdleOnDrop<'a>(Option<&'a StateCell>);

impl Drop for IdleOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.set(ConnectionState::Idle);
        }
    }
}

/// The halves of a Unix socket: read readiness only (see `crate::unix`).
pub(crate) fn split_unix(stream: UnixStream) -> Result<(ReadHalf, WriteHalf)> {
    let socket = unix::Socket::new(stream)
        .map_err(|e| Error::io("registering the socket with the runtime", e))?;
    let writer = std::sync::Arc::new(unix::Writer::new(socket.clone()));
    Ok((
        Box::new(unix::Reader(socket)),
        WriteHalf::Unix(writer, unix::WriteWait::default()),
    ))
}

pub(crate) fn split_other<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
) -> (ReadHalf, WriteHalf) {
    let (r, w) = crate::io::split(stream);
    (Box::new(r), WriteHalf::Other(Box::new(w)))
}

/// Reads the greeting (see [`greeting_line`] for the events that may come first).
async fn read_greeting(reader: &mut LineReader<ReadHalf>, hook: &HookSlot) -> Result<Greeting> {
    let line = handshake_line(
        greeting_line(reader, |line| hook.received(line)).await,
        "the greeting",
    )?;
    let line = line.as_str();
    match Incoming::parse(line) {
        Ok(Incoming::Greeting(_)) => serde_json::from_str(line)
            .map_err(|e| Error::handshake(format!("malformed greeting ({e}): {line}"))),
        _ => Err(Error::handshake(format!(
            "expected a QMP greeting, got: {line}{}",
            if is_hmp_banner(line) {
                "; this is QEMU's human monitor (HMP), not QMP: give QEMU \
                 `-qmp unix:PATH,server=on,wait=off` (or `-mon chardev=ID,mode=control`) \
                 for the socket to connect to"
            } else {
                ""
            }
        ))),
    }
}

/// The first line of a new connection that is not an event: the greeting, or
/// whatever stands in its place (`None` at the end of the stream); `received` sees
/// every line read, the skipped ones too. The client's handshake and the proxy's
/// connection to QEMU both read the greeting through it.
///
/// QEMU can write an event to a new connection before its greeting. It sends events
/// to a monitor whose client has negotiated, and resets that state only when it
/// handles the new connection's opening; an event emitted in between (by the main
/// thread) goes out on the new socket first. Seen in CI with QEMU 7.2 started for a
/// test: a `RESUME` ahead of the greeting of the first `qmp call` after the socket
/// appeared. Such an event belongs to no session of ours, so it is dropped (logged),
/// as events during negotiation are; the caller's deadline still bounds the wait.
pub(crate) async fn greeting_line<R: AsyncRead + Unpin>(
    reader: &mut LineReader<R>,
    mut received: impl FnMut(&str),
) -> std::result::Result<Option<String>, CodecError> {
    loop {
        let Some(line) = reader.next_line().await? else {
            return Ok(None);
        };
        received(line);
        match Incoming::parse(line) {
            Ok(Incoming::Event { name, .. }) => {
                tracing::warn!(target: "qmp::wire", event = %name, "ignoring an event before the greeting");
            }
            // Owned: a borrowed line cannot leave this loop (it reads again).
            _ => return Ok(Some(line.to_owned())),
        }
    }
}

/// Whether `line` is the banner of QEMU's human monitor ("QEMU 10.0.2 monitor - type
/// 'help' for more information"), which a socket given with `-monitor` sends: the
/// most common wrong socket.
fn is_hmp_banner(line: &str) -> bool {
    line.starts_with("QEMU ") && line.contains(" monitor - type 'help'")
}

/// Runs `qmp_capabilities`; returns whether `oob` is enabled.
async fn negotiate(
    reader: &mut LineReader<ReadHalf>,
    writer: &mut LineWriter<WriteHalf>,
    greeting: &Greeting,
    want_oob: bool,
    hook: &HookSlot,
) -> Result<bool> {
    let oob = want_oob && greeting.offers("oob");
    let enable: &[&str] = if oob { &["oob"] } else { &[] };
    let mut request = Vec::with_capacity(64);
    write_request(
        &mut request,
        ExecKind::Execute,
        "qmp_capabilities",
        Some(&serde_json::json!({ "enable": enable })),
        Some(0),
    )
    .map_err(|e| Error::encode("qmp_capabilities", e))?;
    // Told before the bytes go out, with nothing locked.
    hook.sent(&request);
    writer.push_bytes(&request);
    writer
        .flush()
        .await
        .map_err(|e| Error::io("sending qmp_capabilities", e))?;
    loop {
        let line = read_line(reader, "the qmp_capabilities reply").await?;
        hook.received(line);
        match Incoming::parse(line) {
            Ok(Incoming::Return { .. }) => return Ok(oob),
            Ok(Incoming::Error { error, .. }) => {
                let desc = parse_error_body(error)
                    .map(|b| format!("{}: {}", b.class, b.desc))
                    .unwrap_or_else(|_| error.get().to_owned());
                return Err(Error::handshake(format!("qmp_capabilities failed: {desc}")));
            }
            Ok(Incoming::Event { name, .. }) => {
                tracing::debug!(target: "qmp::connection", event = %name, "event during negotiation dropped");
            }
            // QEMU greets twice when a client connects to the chardev before the
            // monitor is attached to it (seen with qemu-storage-daemon 10.0, whose
            // `--chardev` exists before its `--monitor`): the greeting is never a
            // reply, so it is skipped here as the reader task skips it later.
            Ok(Incoming::Greeting(_)) => {
                tracing::warn!(target: "qmp::wire", "ignoring a second greeting during negotiation");
            }
            _ => {
                return Err(Error::handshake(format!(
                    "unexpected message during negotiation: {line}"
                )))
            }
        }
    }
}

/// How the socket comes to be, for the error when it takes too long.
#[derive(Clone, Copy)]
enum Opening {
    Connect,
    Accept,
    Given,
}

/// The limit that ran out, as error texts show it: a phase's own ("5 s") or the
/// connect timeout ("the connect timeout (30 s)").
struct Within {
    limit: Duration,
    overall: bool,
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.overall {
            write!(f, "the connect timeout ({})", Limit(self.limit))
        } else {
            write!(f, "{}", Limit(self.limit))
        }
    }
}

/// Runs `work` under its own deadline `own` (from now) and the overall one,
/// whichever ends first; `error` makes the error naming the limit that ran out.
async fn within<T>(
    work: impl std::future::Future<Output = Result<T>>,
    own: Option<Duration>,
    overall: Option<(tokio::time::Instant, Duration)>,
    error: impl FnOnce(Within) -> Error,
) -> Result<T> {
    let own = own.map(|t| (tokio::time::Instant::now() + t, t));
    let bound = match (own, overall) {
        (Some((at, t)), Some((all_at, all))) => Some(if at <= all_at {
            (
                at,
                Within {
                    limit: t,
                    overall: false,
                },
            )
        } else {
            (
                all_at,
                Within {
                    limit: all,
                    overall: true,
                },
            )
        }),
        (Some((at, t)), None) => Some((
            at,
            Within {
                limit: t,
                overall: false,
            },
        )),
        (None, Some((at, all))) => Some((
            at,
            Within {
                limit: all,
                overall: true,
            },
        )),
        (None, None) => None,
    };
    match bound {
        Some((at, w)) => match tokio::time::timeout_at(at, work).await {
            Ok(r) => r,
            Err(_) => Err(error(w)),
        },
        None => work.await,
    }
}

async fn read_line<'r>(reader: &'r mut LineReader<ReadHalf>, what: &str) -> Result<&'r str> {
    handshake_line(reader.next_line().await, what)
}

/// A handshake read's outcome as the handshake's error: `what` names what was expected.
fn handshake_line<T>(read: std::result::Result<Option<T>, CodecError>, what: &str) -> Result<T> {
    match read {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err(Error::handshake(format!(
            "the peer closed the connection before {what}"
        ))),
        Err(CodecError::Io(e)) => Err(Error::io(&format!("reading {what}"), e)),
        Err(e) => Err(Error::handshake(format!("reading {what}: {e}"))),
    }
}

/// Connects to a QMP Unix socket with the default [`Config`].
///
/// # Errors
/// See [`Config::connect_unix`].
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Client> {
    Config::new().connect_unix(path).await
}

/// Connects to a QMP TCP socket with the default [`Config`].
///
/// # Errors
/// See [`Config::connect_tcp`].
pub async fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Client> {
    Config::new().connect_tcp(addr).await
}
