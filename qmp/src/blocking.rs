//! A blocking wrapper for programs that do not use async Rust.
//!
//! [`Client`] owns a small tokio runtime (a current-thread runtime driven by a thread of
//! its own) on which the connection's reader and writer tasks keep running between
//! calls, so events are received and buffered (up to the subscriber capacity) while
//! the program does other things. Each method blocks the calling thread until the
//! async counterpart completes; the guarantees are the same as the async client's (ids
//! on every request, so a late reply never reaches the next caller; timeouts; the first
//! error on disconnect), and so are the errors, with the same texts.
//!
//! ```no_run
//! # fn demo() -> Result<(), qmp::Error> {
//! // A Unix socket with the default `Config`:
//! let client = qmp::blocking::Client::connect("/tmp/qmp.sock")?;
//! let version = client.execute_raw("query-version", None::<&()>)?;
//! println!("{version}");
//! // Other settings (timeouts, event capacity, …): `connect_unix` with a `Config`.
//! let mut config = qmp::Config::new();
//! config.call_timeout(Some(std::time::Duration::from_secs(5)));
//! let other = qmp::blocking::Client::connect_unix(&config, "/tmp/other.sock")?;
//! other.close()?;
//! # Ok(()) }
//! ```
//!
//! # Inside an async runtime
//!
//! A thread that runs a tokio runtime (a worker, a `#[tokio::main]` or
//! `#[tokio::test]` body, a `Runtime::block_on`) must not block: the tasks it runs
//! would stall. There every method that would block ([`Client::connect`],
//! [`Client::execute`], [`Client::subscribe`], [`Events::recv`], [`Client::close`], …)
//! returns an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error saying
//! so, instead of blocking or panicking: use [`crate::Client`] there, or move the
//! blocking code into `tokio::task::spawn_blocking` (or a thread of its own), where it
//! works. A thread that only entered a runtime's context (`Handle::enter`) counts as
//! inside it. Dropping a client or a subscription there is fine: the runtime
//! underneath then shuts down on its own thread, without being waited for.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::events::{EventStream, RawEvent};
use crate::message::Greeting;
use crate::{Command, Config, Event, EventSet, Overflow, PeerSchema};

/// A blocking QMP client. Cloning shares the connection and the runtime.
#[derive(Clone, Debug)]
pub struct Client {
    runtime: Arc<Background>,
    inner: crate::Client,
}

/// Whether the calling thread runs a tokio runtime, so that blocking it would stall
/// that runtime's tasks (tokio itself panics there: "Cannot start a runtime from
/// within a runtime"): a worker thread, or the thread of a current-thread runtime
/// (`worker_index` is `Some`); or a thread with a runtime's context that is not
/// inside a task, i.e. a `block_on` body (a multi-thread runtime's `block_on` thread
/// is no worker) or a `Handle::enter` guard, which cannot be told apart. A
/// `spawn_blocking` closure (or code under `block_in_place`) has a context and is
/// inside a task, but no worker's: allowed, as blocking is what that pool is for.
fn inside_runtime() -> bool {
    tokio::runtime::worker_index().is_some()
        || (Handle::try_current().is_ok() && tokio::task::try_id().is_none())
}

/// The error of a blocking `method` called where it must not block (see the
/// [module](self) docs).
fn refused(method: &str) -> Error {
    Error::unsupported(format!(
        "{method} was called from inside a tokio runtime, whose thread it would block: \
         use `qmp::Client` there, or call it from `tokio::task::spawn_blocking`"
    ))
}

/// An error if `method` may not block here.
pub(crate) fn check(method: &str) -> Result<()> {
    if inside_runtime() {
        Err(refused(method))
    } else {
        Ok(())
    }
}

/// The runtime of a blocking client: a current-thread tokio runtime that a thread of
/// its own drives (`Runtime::block_on` until the last handle goes), so the
/// connection's tasks run between calls; calls wait for their futures from the
/// caller's thread ([`Background::block_on`]). This rather than a one-worker
/// multi-thread runtime: the same behaviour without building tokio's multi-thread
/// scheduler into every crate that uses the bindings.
#[derive(Debug)]
struct Background {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts the runtime and its thread; `method` names the caller in the error
    /// when the calling thread may not block.
    fn start(method: &str) -> Result<Arc<Background>> {
        // Before building anything: a runtime dropped inside another one panics.
        check(method)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the runtime", e))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("qmp-blocking".into())
            .spawn(move || {
                // Returns when the last handle is dropped; dropping the runtime then
                // cancels the connection's tasks, which closes the connection. It
                // is dropped here, on a thread that runs no other runtime, so it
                // never panics for being dropped inside one.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| Error::io("starting the runtime's thread", e))?;
        Ok(Arc::new(Background {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    /// Runs `f` to completion on the calling thread, parking it between polls, or
    /// fails when `method` may not block here. The runtime's own thread drives I/O
    /// and timers and runs the connection's tasks; this thread only polls `f`, with
    /// the runtime's context entered (so `f` may spawn and sleep on it) and without
    /// tokio's cooperative budget (a budget left over from an enclosing task would
    /// make `f` yield forever). It does not use `Handle::block_on`, which panics
    /// inside another runtime: [`inside_runtime`] decides, and should it miss a case,
    /// the thread blocks rather than the program panicking.
    fn block_on<F: Future>(&self, method: &str, f: F) -> Result<F::Output> {
        check(method)?;
        let _context = self.handle.enter();
        let mut f = std::pin::pin!(tokio::task::unconstrained(f));
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return Ok(v);
            }
            // A wake-up before this park leaves the token set, so none is lost; a
            // spurious return only polls once more.
            std::thread::park();
        }
    }
}

/// Wakes a thread parked in [`Background::block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Never join from the runtime's own thread (a handle dropped by a task),
            // nor from a thread that runs a runtime (it must not block): there the
            // thread ends on its own, shutting the runtime down.
            if thread.thread().id() != std::thread::current().id() && !inside_runtime() {
                let _ = thread.join();
            }
        }
    }
}

impl Client {
    /// Connects to the QMP Unix socket at `path` with the default [`Config`]: the
    /// usual way in. Use [`connect_unix`](Self::connect_unix) to choose timeouts,
    /// event buffers and the like, [`connect_tcp`](Self::connect_tcp) for TCP.
    ///
    /// # Errors
    /// See [`Config::connect_unix`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// inside a tokio runtime (see the [module](self) docs).
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        Client::connect_unix_as("qmp::blocking::Client::connect", &Config::new(), path)
    }

    /// Connects to a QMP Unix socket with `config` (for the default settings,
    /// [`connect`](Self::connect)).
    ///
    /// # Errors
    /// See [`Config::connect_unix`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// inside a tokio runtime (see the [module](self) docs).
    pub fn connect_unix(config: &Config, path: impl AsRef<Path>) -> Result<Client> {
        Client::connect_unix_as("qmp::blocking::Client::connect_unix", config, path)
    }

    fn connect_unix_as(method: &str, config: &Config, path: impl AsRef<Path>) -> Result<Client> {
        let runtime = Background::start(method)?;
        let inner = runtime.block_on(method, config.connect_unix(path))??;
        Ok(Client { runtime, inner })
    }

    /// Connects to a QMP TCP socket with `config`.
    ///
    /// # Errors
    /// See [`Config::connect_tcp`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// inside a tokio runtime (see the [module](self) docs).
    pub fn connect_tcp(config: &Config, addr: &str) -> Result<Client> {
        const METHOD: &str = "qmp::blocking::Client::connect_tcp";
        let runtime = Background::start(METHOD)?;
        let inner = runtime.block_on(METHOD, config.connect_tcp(addr.to_owned()))??;
        Ok(Client { runtime, inner })
    }

    /// Accepts one connection from QEMU on a listening Unix socket at `path` (QEMU
    /// started with a client-mode monitor), waiting at most the connect timeout.
    ///
    /// # Errors
    /// See [`Config::accept_unix`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// inside a tokio runtime (see the [module](self) docs).
    pub fn accept_unix(
        config: &Config,
        listener: std::os::unix::net::UnixListener,
    ) -> Result<Client> {
        const METHOD: &str = "qmp::blocking::Client::accept_unix";
        let runtime = Background::start(METHOD)?;
        let inner = runtime.block_on(METHOD, async {
            listener
                .set_nonblocking(true)
                .map_err(|e| Error::io("preparing the listener", e))?;
            let listener = tokio::net::UnixListener::from_std(listener)
                .map_err(|e| Error::io("preparing the listener", e))?;
            config.accept_unix(&listener).await
        })??;
        Ok(Client { runtime, inner })
    }

    /// The async client underneath (its futures must run on [`Self::handle`]'s runtime).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// A handle to the runtime the connection runs on (a current-thread runtime that
    /// the client's own thread drives; `handle().block_on(..)` runs a future of
    /// [`Self::as_async`] from a thread outside any runtime).
    pub fn handle(&self) -> &Handle {
        &self.runtime.handle
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        self.inner.greeting()
    }

    /// A handle whose calls use `timeout`.
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Client {
        Client {
            runtime: self.runtime.clone(),
            inner: self.inner.with_timeout(timeout),
        }
    }

    /// See [`crate::Client::execute`].
    ///
    /// # Errors
    /// As the async version; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// inside a tokio runtime (see the [module](self) docs).
    pub fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.runtime
            .block_on("qmp::blocking::Client::execute", self.inner.execute(cmd))?
    }

    /// See [`crate::Client::execute_oob`].
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn execute_oob<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.runtime.block_on(
            "qmp::blocking::Client::execute_oob",
            self.inner.execute_oob(cmd),
        )?
    }

    /// See [`crate::Client::execute_with_fds`].
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn execute_with_fds<C: Command>(&self, cmd: &C, fds: Vec<OwnedFd>) -> Result<C::Reply> {
        self.runtime.block_on(
            "qmp::blocking::Client::execute_with_fds",
            self.inner.execute_with_fds(cmd, fds),
        )?
    }

    /// See [`crate::Client::execute_raw`].
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.runtime.block_on(
            "qmp::blocking::Client::execute_raw",
            self.inner.execute_raw(name, args),
        )?
    }

    /// See [`crate::Client::execute_and_wait`].
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn execute_and_wait<C, E, F>(&self, cmd: &C, until: F) -> Result<(C::Reply, E)>
    where
        C: Command,
        E: Event + Send + 'static,
        F: FnMut(&E) -> bool,
    {
        self.runtime.block_on(
            "qmp::blocking::Client::execute_and_wait",
            self.inner.execute_and_wait(cmd, until),
        )?
    }

    /// The peer's schema, fetched on first use and kept for the connection; see
    /// [`crate::Client::peer_schema`].
    ///
    /// # Errors
    /// As [`execute`](Self::execute) (even when the schema is known already, so
    /// that a program's use inside a runtime fails the same way every time).
    pub fn peer_schema(&self) -> Result<Arc<PeerSchema>> {
        self.schema("qmp::blocking::Client::peer_schema")
    }

    fn schema(&self, method: &str) -> Result<Arc<PeerSchema>> {
        check(method)?;
        if let Some(s) = self.inner.peer_schema_if_known() {
            return Ok(s);
        }
        self.runtime.block_on(method, self.inner.peer_schema())?
    }

    /// The peer's schema if already known; never fetches.
    pub fn peer_schema_if_known(&self) -> Option<Arc<PeerSchema>> {
        self.inner.peer_schema_if_known()
    }

    /// Whether the peer has command `C`; see [`crate::Client::supports`].
    ///
    /// # Errors
    /// As [`peer_schema`](Self::peer_schema).
    pub fn supports<C: Command>(&self) -> Result<bool> {
        Ok(self
            .schema("qmp::blocking::Client::supports")?
            .has_command(C::NAME))
    }

    /// Whether the peer has event `E`; see [`crate::Client::supports_event`].
    ///
    /// # Errors
    /// As [`peer_schema`](Self::peer_schema).
    pub fn supports_event<E: Event>(&self) -> Result<bool> {
        Ok(self
            .schema("qmp::blocking::Client::supports_event")?
            .has_event(E::NAME))
    }

    /// Answers a libvirt schema query; see [`crate::Client::supports_probe`].
    ///
    /// # Errors
    /// As [`peer_schema`](Self::peer_schema), and [`ErrorKind::Probe`](crate::ErrorKind::Probe)
    /// for a malformed query.
    pub fn supports_probe(&self, query: &str) -> Result<bool> {
        self.probe("qmp::blocking::Client::supports_probe", query)
    }

    fn probe(&self, method: &str, query: &str) -> Result<bool> {
        self.schema(method)?.probe(query).map_err(Error::probe)
    }

    /// Whether `C`'s arguments have the member at `path`; see
    /// [`crate::Client::supports_member`].
    ///
    /// # Errors
    /// As [`supports_probe`](Self::supports_probe).
    pub fn supports_member<C: Command>(&self, path: &str) -> Result<bool> {
        self.probe(
            "qmp::blocking::Client::supports_member",
            &format!("{}/arg-type/{path}", C::NAME),
        )
    }

    /// Whether the enum at `path` in `C`'s arguments lists `value`; see
    /// [`crate::Client::supports_value`].
    ///
    /// # Errors
    /// As [`supports_probe`](Self::supports_probe).
    pub fn supports_value<C: Command>(&self, path: &str, value: &str) -> Result<bool> {
        self.probe(
            "qmp::blocking::Client::supports_value",
            &format!("{}/arg-type/{path}/^{value}", C::NAME),
        )
    }

    /// Whether this handle's typed calls are refused before sending when the peer's
    /// known schema lacks what they use; see [`crate::Client::refuses_unsupported`].
    pub fn refuses_unsupported(&self) -> bool {
        self.inner.refuses_unsupported()
    }

    /// A handle whose typed calls are (or are not) refused before sending; see
    /// [`crate::Client::with_refusal`].
    pub fn with_refusal(&self, refuse: bool) -> Client {
        Client {
            runtime: self.runtime.clone(),
            inner: self.inner.with_refusal(refuse),
        }
    }

    /// A blocking subscription over `stream`, made by `method`: refused inside a
    /// runtime, where its only use (waiting) would block.
    fn events<T>(
        &self,
        method: &str,
        stream: impl FnOnce() -> EventStream<T>,
    ) -> Result<Events<T>> {
        check(method)?;
        Ok(Events {
            runtime: self.runtime.clone(),
            stream: stream(),
        })
    }

    /// Subscribes to one event type; see [`crate::Client::subscribe`].
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) inside a tokio
    /// runtime (see the [module](self) docs).
    pub fn subscribe<E: Event + Send + 'static>(&self) -> Result<Events<E>> {
        self.events("qmp::blocking::Client::subscribe", || {
            self.inner.subscribe()
        })
    }

    /// Subscribes to one event type with the overflow mode chosen at creation; see
    /// [`crate::Client::subscribe_with`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_with<E: Event + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Result<Events<E>> {
        self.events("qmp::blocking::Client::subscribe_with", || {
            self.inner.subscribe_with(overflow)
        })
    }

    /// Subscribes to every event, decoded into an [`EventSet`] (e.g. the generated
    /// all-events enum `Event`); see [`crate::Client::subscribe_all`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_all<S: EventSet + Send + 'static>(&self) -> Result<Events<S>> {
        self.events("qmp::blocking::Client::subscribe_all", || {
            self.inner.subscribe_all()
        })
    }

    /// As [`subscribe_all`](Self::subscribe_all), with the overflow mode chosen at
    /// creation; see [`crate::Client::subscribe_all_with`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_all_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Result<Events<S>> {
        self.events("qmp::blocking::Client::subscribe_all_with", || {
            self.inner.subscribe_all_with(overflow)
        })
    }

    /// As [`subscribe`](Self::subscribe), each event decoded once for all the
    /// shared subscriptions of its type and handed out as an `Arc<E>`; see
    /// [`crate::Client::subscribe_shared`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_shared<E: Event + Send + Sync + 'static>(&self) -> Result<Events<Arc<E>>> {
        self.events("qmp::blocking::Client::subscribe_shared", || {
            self.inner.subscribe_shared()
        })
    }

    /// As [`subscribe_shared`](Self::subscribe_shared), with the overflow mode chosen
    /// at creation; see [`crate::Client::subscribe_shared_with`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_shared_with<E: Event + Send + Sync + 'static>(
        &self,
        overflow: Overflow,
    ) -> Result<Events<Arc<E>>> {
        self.events("qmp::blocking::Client::subscribe_shared_with", || {
            self.inner.subscribe_shared_with(overflow)
        })
    }

    /// As [`subscribe_all`](Self::subscribe_all), each event decoded once for all the
    /// shared subscriptions of the set and handed out as an `Arc<S>`; see
    /// [`crate::Client::subscribe_all_shared`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_all_shared<S: EventSet + Send + Sync + 'static>(
        &self,
    ) -> Result<Events<Arc<S>>> {
        self.events("qmp::blocking::Client::subscribe_all_shared", || {
            self.inner.subscribe_all_shared()
        })
    }

    /// As [`subscribe_all_shared`](Self::subscribe_all_shared), with the overflow mode
    /// chosen at creation; see [`crate::Client::subscribe_all_shared_with`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_all_shared_with<S: EventSet + Send + Sync + 'static>(
        &self,
        overflow: Overflow,
    ) -> Result<Events<Arc<S>>> {
        self.events("qmp::blocking::Client::subscribe_all_shared_with", || {
            self.inner.subscribe_all_shared_with(overflow)
        })
    }

    /// Renamed to [`subscribe_all`](Self::subscribe_all) (every event, typed).
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    #[deprecated(note = "renamed to subscribe_all")]
    pub fn subscribe_set<S: EventSet + Send + 'static>(&self) -> Result<Events<S>> {
        self.subscribe_all()
    }

    /// Renamed to [`subscribe_all_with`](Self::subscribe_all_with).
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    #[deprecated(note = "renamed to subscribe_all_with")]
    pub fn subscribe_set_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Result<Events<S>> {
        self.subscribe_all_with(overflow)
    }

    /// Subscribes to every event undecoded; see [`crate::Client::subscribe_raw`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_raw(&self) -> Result<Events<RawEvent>> {
        self.events("qmp::blocking::Client::subscribe_raw", || {
            self.inner.subscribe_raw()
        })
    }

    /// Subscribes to every event undecoded with the overflow mode chosen at creation;
    /// see [`crate::Client::subscribe_raw_with`].
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_raw_with(&self, overflow: Overflow) -> Result<Events<RawEvent>> {
        self.events("qmp::blocking::Client::subscribe_raw_with", || {
            self.inner.subscribe_raw_with(overflow)
        })
    }

    /// Closes the connection and waits for the disconnect to complete. (Dropping
    /// the last handle closes it too, also inside a runtime.)
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) inside a tokio
    /// runtime (see the [module](self) docs); the connection is left open then.
    pub fn close(&self) -> Result<()> {
        self.runtime
            .block_on("qmp::blocking::Client::close", self.inner.close())
    }
}

/// A blocking event subscription; also an [`Iterator`] (ending when the connection
/// closes).
#[derive(Debug)]
pub struct Events<T> {
    runtime: Arc<Background>,
    stream: EventStream<T>,
}

impl<T: Send + 'static> Events<T> {
    /// Blocks for the next event.
    ///
    /// Returns `Some(Ok(event))`; `Some(Err(e))` for an event that did not decode or
    /// a count of missed ones ([`crate::Error::is_lagged`]), after which the
    /// subscription goes on, or for a call inside a tokio runtime
    /// ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), see the
    /// [module](self) docs); `None` once the connection is closed (the stream has
    /// ended, and every later call returns `None` too).
    pub fn recv(&mut self) -> Option<Result<T>> {
        match self
            .runtime
            .block_on("qmp::blocking::Events::recv", self.stream.next())
        {
            Ok(next) => next,
            Err(e) => Some(Err(e)),
        }
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// Returns what [`recv`](Self::recv) returns, or, when no event came within
    /// `timeout`, `Some(Err(e))` with [`e.is_timeout()`](crate::Error::is_timeout)
    /// and a text naming the limit, "timed out: no event arrived within 2 s" (its
    /// [`command`](crate::Error::command) is `event`); the subscription stays usable.
    /// The stream's end is `None`, never a timeout.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Result<T>> {
        let waited = self
            .runtime
            .block_on("qmp::blocking::Events::recv_timeout", async {
                tokio::time::timeout(timeout, self.stream.next()).await
            });
        match waited {
            Ok(Ok(next)) => next,
            Ok(Err(_elapsed)) => Some(Err(Error::event_timeout(timeout))),
            Err(e) => Some(Err(e)),
        }
    }
}

impl<T: Send + 'static> Iterator for Events<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.recv()
    }
}
