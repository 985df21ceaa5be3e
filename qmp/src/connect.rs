//! Connection set-up: [`Config`], connecting and accepting, the greeting and the
//! capability negotiation, all before the connection is split into background tasks.
//!
//! Every set-up function is cancellation-safe: until it returns a [`Client`], it owns
//! the socket, so dropping its future (or hitting its timeout) closes the socket and
//! leaves nothing half-open.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs, UnixListener, UnixStream};

use crate::client::Client;
use crate::codec::{CodecError, LineReader, LineWriter, DEFAULT_MAX_LINE};
use crate::connection::{self, ReadHalf, TaskOptions, WriteHalf};
use crate::error::{Error, Result};
use crate::fanout::Overflow;
use crate::message::{parse_error_body, write_request, ExecKind, Greeting, Incoming};
use crate::state::{RunState, RunStateWatch, StateCell};
use crate::traffic::{HookSlot, TrafficHook};
use crate::unix;

/// The default number of events buffered per subscriber before it lags.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// The default time allowed for connecting plus the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options, a builder: `Config::new().call_timeout(d).connect_unix(path)`.
///
/// A `Config` also owns a run state ([`Config::run_state`]) that the connections made
/// with it update, so a watcher created before connecting sees `Connecting` too.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) connect_timeout: Option<Duration>,
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
    /// Defaults: 30 s connect timeout, no call timeout, 16 MiB maximum message, 1024
    /// buffered events per subscriber, `oob` negotiated when offered, the peer's
    /// schema fetched only when asked for, and typed calls refused before sending
    /// when the (known) schema lacks what they use.
    pub fn new() -> Self {
        Config {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
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

    /// Time allowed for connecting (or accepting) plus greeting and negotiation;
    /// `None` waits forever.
    pub fn connect_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.connect_timeout = t;
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
    /// A [`Recorder`](crate::server::transcript::Recorder) writes them to a transcript
    /// file that [`crate::server`] can replay. See [`crate::traffic`].
    pub fn traffic_hook(&mut self, hook: Arc<dyn TrafficHook>) -> &mut Self {
        self.hook = HookSlot(Some(hook));
        self
    }

    /// A watcher of the run state of the connections made with this `Config` (and
    /// its clones), created before connecting so it sees `Connecting` too. With
    /// several connections at once it follows whichever changed last; use
    /// [`Client::run_state`] to follow one connection.
    pub fn run_state(&self) -> RunStateWatch {
        self.state.watch()
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
        self.setup(
            async move {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| Error::io("connecting over TCP", e))?;
                let _ = stream.set_nodelay(true);
                Ok(split_other(stream))
            },
            "tcp".into(),
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
        self.setup(async move { Ok(split_other(stream)) }, "stream".into())
            .await
    }

    /// Speaks QMP over a connected Unix stream (fd passing available).
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_unix_stream(&self, stream: UnixStream) -> Result<Client> {
        self.setup(async move { split_unix(stream) }, "unix-stream".into())
            .await
    }

    /// Waits for QEMU to connect to `listener` (QEMU started with a client-mode
    /// monitor, e.g. `-chardev socket,path=P,server=off`), then handshakes. The
    /// listener stays usable for further connections.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn accept_unix(&self, listener: &UnixListener) -> Result<Client> {
        self.setup(
            async move {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| Error::io("accepting a connection", e))?;
                split_unix(stream)
            },
            "accepted-unix".into(),
        )
        .await
    }

    /// Like [`accept_unix`](Self::accept_unix), over TCP.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn accept_tcp(&self, listener: &TcpListener) -> Result<Client> {
        self.setup(
            async move {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| Error::io("accepting a connection", e))?;
                let _ = stream.set_nodelay(true);
                Ok(split_other(stream))
            },
            "accepted-tcp".into(),
        )
        .await
    }

    /// Runs `open` and the handshake under the connect timeout, keeping the run state.
    async fn setup(
        &self,
        open: impl std::future::Future<Output = Result<(ReadHalf, WriteHalf)>>,
        peer: String,
    ) -> Result<Client> {
        let state = self.state.child();
        state.set(RunState::Connecting);
        // Back to Idle however this ends, unless it ends connected (also on drop).
        let mut guard = IdleOnDrop(Some(&state));
        let work = async {
            let (r, w) = open.await?;
            let mut reader = LineReader::with_max_line(r, self.max_message);
            let mut writer = LineWriter::new(w);
            let (greeting, oob) =
                handshake(&mut reader, &mut writer, self.negotiate_oob, &self.hook).await?;
            Ok::<_, Error>((reader, writer, greeting, oob))
        };
        let deadline = self
            .connect_timeout
            .map(|t| tokio::time::Instant::now() + t);
        let (reader, writer, greeting, oob) = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| Error::timeout("connect", crate::TimeoutStage::Unanswered))??,
            None => work.await?,
        };
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
                peer,
                hook: self.hook.clone(),
            },
        );
        guard.0 = None;
        state.set(RunState::Running);
        let client = Client::new(shared, tx, self.call_timeout, self.refuse_unsupported);
        if self.fetch_peer_schema {
            let fetch = client.peer_schema();
            let fetched = match deadline {
                Some(d) => tokio::time::timeout_at(d, fetch).await.map_err(|_| {
                    Error::timeout("query-qmp-schema", crate::TimeoutStage::Unanswered)
                })?,
                None => fetch.await,
            };
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
            s.set(RunState::Idle);
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

/// Reads the greeting and runs `qmp_capabilities`. Returns the greeting and whether
/// `oob` is enabled.
async fn handshake(
    reader: &mut LineReader<ReadHalf>,
    writer: &mut LineWriter<WriteHalf>,
    want_oob: bool,
    hook: &HookSlot,
) -> Result<(Greeting, bool)> {
    let line = read_line(reader, "the greeting").await?;
    hook.received(line);
    let greeting: Greeting = match Incoming::parse(line) {
        Ok(Incoming::Greeting(_)) => serde_json::from_str(line)
            .map_err(|e| Error::handshake(format!("malformed greeting ({e}): {line}")))?,
        _ => {
            return Err(Error::handshake(format!(
                "expected a QMP greeting, got: {line}"
            )))
        }
    };
    let oob = want_oob && greeting.offers("oob");
    let enable: &[&str] = if oob { &["oob"] } else { &[] };
    writer
        .push_with(|b| {
            let start = b.len();
            write_request(
                b,
                ExecKind::Execute,
                "qmp_capabilities",
                Some(&serde_json::json!({ "enable": enable })),
                Some(0),
            )?;
            hook.sent(&b[start..]);
            Ok(())
        })
        .map_err(|e| Error::encode("qmp_capabilities", e))?;
    writer
        .flush()
        .await
        .map_err(|e| Error::io("sending qmp_capabilities", e))?;
    loop {
        let line = read_line(reader, "the qmp_capabilities reply").await?;
        hook.received(line);
        match Incoming::parse(line) {
            Ok(Incoming::Return { .. }) => return Ok((greeting, oob)),
            Ok(Incoming::Error { error, .. }) => {
                let desc = parse_error_body(error)
                    .map(|b| format!("{}: {}", b.class, b.desc))
                    .unwrap_or_else(|_| error.get().to_owned());
                return Err(Error::handshake(format!("qmp_capabilities failed: {desc}")));
            }
            Ok(Incoming::Event { name, .. }) => {
                tracing::debug!(target: "qmp::connection", event = %name, "event during negotiation dropped");
            }
            _ => {
                return Err(Error::handshake(format!(
                    "unexpected message during negotiation: {line}"
                )))
            }
        }
    }
}

async fn read_line<'r>(reader: &'r mut LineReader<ReadHalf>, what: &str) -> Result<&'r str> {
    match reader.next_line().await {
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
