//! A multiplexing QMP proxy: one connection to QEMU's monitor, any number of clients.
//!
//! QEMU serves one client per monitor socket: while a manager holds it, a shell or a
//! metrics scraper cannot attach. A [`Proxy`] holds that one connection and serves
//! every client that connects to its own listening sockets (Unix or TCP) as QEMU's
//! monitor would, so that each client believes it talks to QEMU:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use qmp::proxy::{Allow, ProxyConfig};
//!
//! let proxy = ProxyConfig::new().connect_unix("/run/vm1/qmp.sock").await?;
//! let _rw = proxy.listen_unix("/run/vm1/qmp-shared.sock", Allow::all()).await?;
//! let _ro = proxy.listen_unix("/run/vm1/qmp-ro.sock", Allow::read_only()).await?;
//! let why = proxy.closed().await; // QEMU went away (its clients were disconnected)
//! eprintln!("{why}");
//! # Ok(()) }
//! ```
//!
//! From the command line, [`run`] (`qmp proxy --socket QEMU_SOCKET --listen PATH
//! [--read-only-listen PATH]`) serves until Ctrl-C or SIGTERM, or until QEMU goes away.
//!
//! # What each client gets
//! * **The greeting** QEMU sent the proxy, byte for byte (its version and
//!   capabilities). The proxy offers `oob` when QEMU does (it negotiates `oob` with
//!   QEMU itself, unless [`ProxyConfig::negotiate_oob`] is off: then `oob` is taken out
//!   of the greeting, as any capability the proxy does not know how to honour; the
//!   greeting is then re-serialized, members in sorted order).
//! * **Its own capability negotiation**, answered by the proxy (never forwarded) with
//!   QEMU's texts: before `qmp_capabilities` every command is refused with
//!   `CommandNotFound` "Expecting capabilities negotiation with 'qmp_capabilities'";
//!   a second one with "Capabilities negotiation is already complete, command
//!   ignored"; an unknown capability with "Capability X not available". Requests are
//!   checked as QEMU checks them (the same code as [`crate::server`]: JSON parse
//!   errors, "QMP input must be a JSON object", "QMP input member 'x' is unexpected",
//!   …), and requests are split from the byte stream as QEMU's parser splits them
//!   (no newline needed).
//! * **Its ids, verbatim.** Every forwarded request gets a fresh integer id of the
//!   proxy's; the reply goes to the client that sent the request, carrying the
//!   client's own id exactly as the client wrote it (any JSON type, the same value as
//!   another client's, or no id at all: then the reply has none either). The rest of
//!   the reply is QEMU's text unchanged.
//! * **Every event** QEMU sends, verbatim, from the moment its negotiation completed
//!   (the reply to its `qmp_capabilities` comes first), as QEMU does.
//! * **`exec-oob`**, when the client negotiated `oob`: forwarded to QEMU as
//!   `exec-oob`, so QEMU runs it out of band and its reply can overtake in-band ones
//!   (QEMU itself answers "The command X does not support OOB" for the others).
//!
//! # Ordering
//! QEMU runs in-band commands one after the other, whoever sent them; the proxy
//! writes requests to QEMU in the order it read them (per client, in the client's
//! order; between clients, in the order they arrived). Each client receives replies
//! and events in the order QEMU sent them, through one queue per client. Like QEMU,
//! the proxy reads a client's next in-band request only once the previous one was
//! answered, unless that client negotiated `oob`; then up to 8 in-band requests may
//! be outstanding (QEMU's `QMP_REQ_QUEUE_LEN_MAX`), and `exec-oob` requests are
//! forwarded at once. Answers the proxy makes itself (refusals, negotiation, parse
//! errors) to an in-band request wait for the client's earlier in-band replies, so
//! in-band replies reach each client in request order, as from QEMU.
//!
//! # Allow-lists
//! Each listening socket has an [`Allow`] list: [`Allow::all`], [`Allow::read_only`]
//! (`query-*`), or names and prefixes ([`Allow::parse`]: `query-*,qom-get`). A
//! command outside it is not forwarded; the client gets
//! `{"error": {"class": "GenericError", "desc": "The command stop is not allowed on
//! this proxy socket (it allows query-*)"}, "id": …}`. The check comes after the
//! negotiation check, as QEMU checks commands after it.
//!
//! # What is not multiplexed
//! * `qmp_capabilities` is per client and never reaches QEMU (the proxy negotiated
//!   once for all).
//! * **File descriptor passing** (SCM_RIGHTS): the proxy does not receive or forward
//!   descriptors. `getfd` and `add-fd`, which need one, are refused with
//!   `GenericError` "The command getfd needs a file descriptor passed with SCM_RIGHTS,
//!   which the QMP proxy does not forward: connect to QEMU's monitor directly to pass
//!   file descriptors". Other commands (`closefd`, `remove-fd`, `query-fdsets`) are
//!   forwarded; note that QEMU keeps one set of named descriptors per monitor, which
//!   all the proxy's clients share.
//! * Anything else that QEMU keeps per monitor is shared the same way, since QEMU
//!   sees one monitor.
//!
//! # Clients that go away, or do not read
//! A client that disconnects with calls in flight does not disturb the others: QEMU
//! still answers, and the proxy drops those replies (logged at `debug`). When a
//! client's input ends, the proxy first waits for the replies to its in-band requests
//! in flight and writes them if the client still reads (a script that writes its
//! requests and then shuts down its sending side gets its answers), then closes the
//! connection. A client
//! whose queue ([`ProxyConfig::client_queue`], 4096 messages) is full, because it does
//! not read what QEMU sends, is disconnected (logged at `warn`): the proxy never
//! makes QEMU or the other clients wait for it.
//!
//! # When QEMU goes away
//! When QEMU closes the monitor (it exited, or the socket broke) or sends a line
//! longer than [`ProxyConfig::max_message_size`], or [`Proxy::close`] is called, or
//! the last [`Proxy`] handle is dropped: every client is disconnected after what QEMU
//! sent before (a `SHUTDOWN` event, say) has been written to it; calls in flight get
//! no reply (as when QEMU itself exits); listeners stop accepting; new connections are
//! closed at once; [`Proxy::closed`] resolves with the reason, e.g. "QEMU's monitor at
//! /run/vm1/qmp.sock closed the connection". [`run`] returns an error naming it when
//! QEMU went away (and `Ok` when stopped by Ctrl-C or SIGTERM). Clients are not told
//! why in QMP (QMP has no message for it): they see the connection close, as when
//! QEMU itself exits.
//!
//! # Logging
//! With [`tracing`], target `qmp::proxy`: clients connecting and leaving at `debug`,
//! dropped replies at `debug`, disconnected slow clients and unexpected messages from
//! QEMU at `warn`.

mod allow;
mod cli;
mod session;
mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

pub use allow::Allow;
pub use cli::{run, ProxyOptions};

use crate::schema_check::Schema;
use crate::server::ListenAddr;

/// How long [`ProxyConfig`]'s connect functions wait for QEMU's greeting and the
/// reply to the proxy's negotiation, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many messages may wait for a client by default (see
/// [`ProxyConfig::client_queue`]).
pub const DEFAULT_CLIENT_QUEUE: usize = 4096;

/// How to connect a [`Proxy`] to QEMU.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    oob: bool,
    client_queue: usize,
    max_message_size: usize,
    connect_timeout: Option<Duration>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::new()
    }
}

impl ProxyConfig {
    /// Negotiates `oob` with QEMU when offered, queues 4096 messages per client, accepts
    /// lines of up to 16 MiB, waits up to 30 s for QEMU to greet and negotiate.
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            oob: true,
            client_queue: DEFAULT_CLIENT_QUEUE,
            max_message_size: crate::codec::DEFAULT_MAX_LINE,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
        }
    }

    /// Whether to negotiate `oob` with QEMU (when QEMU offers it) and offer it to the
    /// clients. Off: `oob` is taken out of the clients' greeting, so no client can send
    /// `exec-oob`.
    pub fn negotiate_oob(&mut self, yes: bool) -> &mut Self {
        self.oob = yes;
        self
    }

    /// How many messages (replies and events) may wait for one client before the
    /// proxy gives up on it and disconnects it (at least 1).
    pub fn client_queue(&mut self, messages: usize) -> &mut Self {
        self.client_queue = messages.max(1);
        self
    }

    /// The longest message accepted, from QEMU and from clients (a client's longer
    /// request gets QEMU's "JSON token size limit exceeded"; a longer line from QEMU
    /// ends the proxy, as it cannot be routed).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message_size = bytes.max(1);
        self
    }

    /// How long to wait for QEMU's greeting and the reply to the proxy's
    /// `qmp_capabilities` (`None`: for ever).
    pub fn connect_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to QEMU's monitor on the Unix socket `path`, reads its greeting and
    /// negotiates.
    ///
    /// # Errors
    /// An I/O error naming the socket: it cannot be reached, QEMU does not greet in
    /// time (another client may be holding its one monitor session), it greets with
    /// something that is not a QMP greeting, or refuses the negotiation.
    pub async fn connect_unix(&self, path: impl AsRef<Path>) -> io::Result<Proxy> {
        let path = path.as_ref();
        let peer = format!("QEMU's monitor at {}", path.display());
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{peer}: connecting: {e}")))?;
        let (r, w) = stream.into_split();
        self.connect_parts(Box::new(r), Box::new(w), peer).await
    }

    /// Connects to QEMU's monitor on a TCP address (`-qmp tcp:HOST:PORT,server=on`).
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_tcp(&self, addr: impl tokio::net::ToSocketAddrs) -> io::Result<Proxy> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("QEMU's monitor: connecting: {e}")))?;
        let peer = match stream.peer_addr() {
            Ok(a) => format!("QEMU's monitor at {a}"),
            Err(_) => "QEMU's monitor".to_string(),
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        self.connect_parts(Box::new(r), Box::new(w), peer).await
    }

    /// Uses `stream`, already connected to QEMU's monitor (nothing read yet).
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix).
    pub async fn connect_stream<S>(&self, stream: S) -> io::Result<Proxy>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        self.connect_parts(Box::new(r), Box::new(w), "QEMU's monitor".to_string())
            .await
    }

    async fn connect_parts(
        &self,
        reader: BoxRead,
        writer: BoxWrite,
        peer: String,
    ) -> io::Result<Proxy> {
        let shared = upstream::start(self, reader, writer, peer).await?;
        Ok(Proxy {
            inner: Arc::new(ProxyInner { shared }),
        })
    }
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A listening socket the proxy takes clients from: each accepted connection comes
/// split into its own halves.
trait Accept: Send + 'static {
    fn accept_split(&self) -> impl Future<Output = io::Result<(BoxRead, BoxWrite)>> + Send;
}

impl Accept for tokio::net::UnixListener {
    async fn accept_split(&self) -> io::Result<(BoxRead, BoxWrite)> {
        let (stream, _) = self.accept().await?;
        let (r, w) = stream.into_split();
        Ok((Box::new(r), Box::new(w)))
    }
}

impl Accept for tokio::net::TcpListener {
    async fn accept_split(&self) -> io::Result<(BoxRead, BoxWrite)> {
        let (stream, _) = self.accept().await?;
        // Replies are small and each is written whole: send at once.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok((Box::new(r), Box::new(w)))
    }
}

/// What a client's writer sends.
#[derive(Debug)]
enum Out {
    /// One message (without terminator) for this client.
    Owned(Vec<u8>),
    /// One message (without terminator) shared by every client (an event).
    Shared(Arc<[u8]>),
    /// Write what is queued before, then close the connection.
    Close,
}

/// One client, as the upstream reader sees it.
#[derive(Debug)]
struct ClientHandle {
    key: u64,
    out: mpsc::Sender<Out>,
    /// Negotiated: receives events.
    negotiated: AtomicBool,
    /// Set when the session must end (its writer stopped, it lags, QEMU went away).
    ended: watch::Sender<bool>,
}

impl ClientHandle {
    /// Queues `out` without waiting; a client whose queue is full is ended.
    fn deliver(&self, out: Out, what: &str) {
        match self.out.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    target: "qmp::proxy",
                    client = self.key,
                    "client does not read ({what} would overflow its queue): disconnecting it"
                );
                self.ended.send_replace(true);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(target: "qmp::proxy", client = self.key, "client gone: {what} dropped");
            }
        }
    }
}

/// A request forwarded to QEMU and not answered yet.
struct Pending {
    client: Arc<ClientHandle>,
    /// The client's own id, verbatim.
    id: Option<Box<RawValue>>,
    /// Held until the reply is queued (the client's in-band window).
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Clients {
    map: HashMap<u64, Arc<ClientHandle>>,
    next: u64,
    /// QEMU went away: no more clients.
    closed: bool,
}

/// State shared by the upstream reader, the sessions and the handles.
struct Shared {
    /// The greeting line clients get.
    greeting: String,
    /// The capabilities clients may enable.
    offered: Vec<String>,
    caps_schema: Schema,
    max_line: usize,
    client_queue: usize,
    peer: String,
    writer: tokio::sync::Mutex<BoxWrite>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    clients: Mutex<Clients>,
    closed: watch::Sender<Option<String>>,
    reader_task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn lock_clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends everything, once: records `reason`, drops the calls in flight, and
    /// disconnects every client after what is queued for it.
    fn close(&self, reason: String) {
        let clients: Vec<Arc<ClientHandle>> = {
            let mut c = self.lock_clients();
            if c.closed {
                return;
            }
            c.closed = true;
            c.map.values().cloned().collect()
        };
        tracing::debug!(target: "qmp::proxy", "closing: {reason}");
        self.closed.send_replace(Some(reason));
        let pending = std::mem::take(&mut *self.lock_pending());
        drop(pending);
        for c in clients {
            if c.out.try_send(Out::Close).is_err() {
                c.ended.send_replace(true);
            }
        }
        if let Some(task) = self
            .reader_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

struct ProxyInner {
    shared: Arc<Shared>,
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        close_upstream(&self.shared, "the proxy was dropped");
    }
}

/// Closes the clients and QEMU's connection (see [`Shared::close`]).
fn close_upstream(shared: &Arc<Shared>, reason: &str) {
    shared.close(reason.to_string());
    let shared = shared.clone();
    // Outside a runtime nothing is running any more, and the socket closes with it.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = shared.writer.lock().await.shutdown().await;
        });
    }
}

/// The proxy: QEMU's one monitor connection, shared by every client of its listeners.
/// A cheap, cloneable handle; the proxy closes when [`Proxy::close`] is called, when
/// QEMU goes away, or when the last handle is dropped (see [the module docs](self)).
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("peer", &self.inner.shared.peer)
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The greeting each client gets (QEMU's, verbatim unless a capability was taken
    /// out).
    pub fn greeting(&self) -> &str {
        &self.shared().greeting
    }

    /// The capabilities clients may enable (`["oob"]` or none).
    pub fn capabilities(&self) -> &[String] {
        &self.shared().offered
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.shared().lock_clients().map.len()
    }

    /// Serves one client on `stream` with allow-list `allow`, until it disconnects or
    /// the proxy closes. The session runs in a task of its own: dropping this future
    /// does not end it.
    pub async fn serve_stream<S>(&self, stream: S, allow: Allow)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let task = tokio::spawn(session::run(
            self.shared().clone(),
            Box::new(r),
            Box::new(w),
            Arc::new(allow),
        ));
        let _ = task.await;
    }

    /// Listens on the Unix socket `path` and serves every client that connects, with
    /// allow-list `allow`, until the returned [`Listener`] is dropped or the proxy
    /// closes. A socket file left by a process that no longer listens is replaced; one
    /// something still listens on is not.
    ///
    /// # Errors
    /// When something listens on `path` already, or binding fails; the message names
    /// the path.
    pub async fn listen_unix(&self, path: impl AsRef<Path>, allow: Allow) -> io::Result<Listener> {
        let path = path.as_ref().to_path_buf();
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{}: something listens on this socket already (another proxy?); \
                     choose another path or stop it",
                    path.display()
                ),
            ));
        }
        if std::fs::symlink_metadata(&path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(&path);
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Listener {
            addr: ListenAddr::Unix(path),
            task: self.accept_clients(listener, allow),
        })
    }

    /// Listens on a TCP address (port 0 picks a free port, see [`Listener::addr`]);
    /// otherwise as [`listen_unix`](Self::listen_unix). QMP has no authentication:
    /// listen on a loopback address unless the network is trusted.
    ///
    /// # Errors
    /// When binding fails; the message names the address.
    pub async fn listen_tcp(&self, addr: SocketAddr, allow: Allow) -> io::Result<Listener> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
        let local = listener.local_addr()?;
        Ok(Listener {
            addr: ListenAddr::Tcp(local),
            task: self.accept_clients(listener, allow),
        })
    }

    /// The task that accepts clients on `listener` and runs a session for each, until
    /// the proxy closes (or the task is aborted: the [`Listener`] was dropped).
    fn accept_clients<L: Accept>(&self, listener: L, allow: Allow) -> JoinHandle<()> {
        let shared = self.shared().clone();
        let allow = Arc::new(allow);
        tokio::spawn(async move {
            let mut closed = shared.closed.subscribe();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept_split() => a,
                    _ = closed.wait_for(Option::is_some) => break,
                };
                match accepted {
                    Ok((r, w)) => {
                        tokio::spawn(session::run(shared.clone(), r, w, allow.clone()));
                    }
                    Err(e) => {
                        // E.g. out of descriptors: wait a little rather than spin.
                        tracing::warn!(target: "qmp::proxy", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }

    /// Closes QEMU's connection and disconnects every client (after what is queued
    /// for it); [`closed`](Self::closed) then says "closed by its owner".
    pub fn close(&self) {
        close_upstream(self.shared(), "closed by its owner");
    }

    /// Whether the proxy has closed (see [the module docs](self#when-qemu-goes-away)).
    pub fn is_closed(&self) -> bool {
        self.shared().closed.borrow().is_some()
    }

    /// Waits until the proxy closes and returns why: e.g. "QEMU's monitor at PATH
    /// closed the connection".
    pub async fn closed(&self) -> String {
        let mut rx = self.shared().closed.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            Err(_) => "the proxy was dropped".to_string(),
        };
        reason
    }
}

/// A listening socket of a [`Proxy`]; stops accepting when dropped (connected clients
/// go on) and removes its Unix socket file.
#[derive(Debug)]
pub struct Listener {
    addr: ListenAddr,
    task: JoinHandle<()>,
}

impl Listener {
    /// Where it listens (with the actual port for TCP).
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// The Unix socket path, if it is one.
    pub fn path(&self) -> Option<&PathBuf> {
        match &self.addr {
            ListenAddr::Unix(p) => Some(p),
            ListenAddr::Tcp(_) => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
        if let ListenAddr::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
    }
}
