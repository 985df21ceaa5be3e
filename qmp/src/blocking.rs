//! A blocking wrapper for programs that do not use async Rust.
//!
//! [`Client`] owns a small tokio runtime (a current-thread runtime driven by a thread of
//! its own) on which the connection's reader and writer tasks keep running between
//! calls, so events are received and buffered (up to the subscriber capacity) while
//! the program does other things. Each method blocks the calling thread until the
//! async counterpart completes; the guarantees are the same as the async client's (ids
//! on every request, so a late reply never reaches the next caller; timeouts; the first
//! error on disconnect).
//!
//! Do not call these methods from inside an async runtime (they would block it).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
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

/// The runtime of a blocking client: a current-thread tokio runtime that a thread of
/// its own drives (`Runtime::block_on` until the last handle goes), so the
/// connection's tasks run between calls; calls block on its [`Handle`] from the
/// caller's thread. This rather than a one-worker multi-thread runtime: the same
/// behaviour without building tokio's multi-thread scheduler into every crate that
/// uses the bindings.
#[derive(Debug)]
struct Background {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> Result<Arc<Background>> {
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
                // cancels the connection's tasks, which closes the connection.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| Error::io("starting the runtime's thread", e))?;
        Ok(Arc::new(Background {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Never join from the runtime's own thread (a handle dropped by a task).
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Client {
    /// Connects to a QMP Unix socket with `config`.
    ///
    /// # Errors
    /// See [`Config::connect_unix`].
    pub fn connect_unix(config: &Config, path: impl AsRef<Path>) -> Result<Client> {
        let runtime = Background::start()?;
        let inner = runtime.block_on(config.connect_unix(path))?;
        Ok(Client { runtime, inner })
    }

    /// Connects to a QMP TCP socket with `config`.
    ///
    /// # Errors
    /// See [`Config::connect_tcp`].
    pub fn connect_tcp(config: &Config, addr: &str) -> Result<Client> {
        let runtime = Background::start()?;
        let inner = runtime.block_on(config.connect_tcp(addr.to_owned()))?;
        Ok(Client { runtime, inner })
    }

    /// Accepts one connection from QEMU on a listening Unix socket at `path` (QEMU
    /// started with a client-mode monitor), waiting at most the connect timeout.
    ///
    /// # Errors
    /// See [`Config::accept_unix`].
    pub fn accept_unix(
        config: &Config,
        listener: std::os::unix::net::UnixListener,
    ) -> Result<Client> {
        let runtime = Background::start()?;
        let inner = runtime.block_on(async {
            listener
                .set_nonblocking(true)
                .map_err(|e| Error::io("preparing the listener", e))?;
            let listener = tokio::net::UnixListener::from_std(listener)
                .map_err(|e| Error::io("preparing the listener", e))?;
            config.accept_unix(&listener).await
        })?;
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
    /// As the async version.
    pub fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.runtime.block_on(self.inner.execute(cmd))
    }

    /// See [`crate::Client::execute_oob`].
    ///
    /// # Errors
    /// As the async version.
    pub fn execute_oob<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.runtime.block_on(self.inner.execute_oob(cmd))
    }

    /// See [`crate::Client::execute_with_fds`].
    ///
    /// # Errors
    /// As the async version.
    pub fn execute_with_fds<C: Command>(&self, cmd: &C, fds: Vec<OwnedFd>) -> Result<C::Reply> {
        self.runtime.block_on(self.inner.execute_with_fds(cmd, fds))
    }

    /// See [`crate::Client::execute_raw`].
    ///
    /// # Errors
    /// As the async version.
    pub fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.runtime.block_on(self.inner.execute_raw(name, args))
    }

    /// See [`crate::Client::execute_and_wait`].
    ///
    /// # Errors
    /// As the async version.
    pub fn execute_and_wait<C, E, F>(&self, cmd: &C, until: F) -> Result<(C::Reply, E)>
    where
        C: Command,
        E: Event + Send + 'static,
        F: FnMut(&E) -> bool,
    {
        self.runtime
            .block_on(self.inner.execute_and_wait(cmd, until))
    }

    /// The peer's schema, fetched on first use and kept for the connection; see
    /// [`crate::Client::peer_schema`].
    ///
    /// # Errors
    /// As the async version.
    pub fn peer_schema(&self) -> Result<Arc<PeerSchema>> {
        if let Some(s) = self.inner.peer_schema_if_known() {
            return Ok(s);
        }
        self.runtime.block_on(self.inner.peer_schema())
    }

    /// The peer's schema if already known; never fetches.
    pub fn peer_schema_if_known(&self) -> Option<Arc<PeerSchema>> {
        self.inner.peer_schema_if_known()
    }

    /// Whether the peer has command `C`; see [`crate::Client::supports`].
    ///
    /// # Errors
    /// As the async version.
    pub fn supports<C: Command>(&self) -> Result<bool> {
        Ok(self.peer_schema()?.has_command(C::NAME))
    }

    /// Whether the peer has event `E`; see [`crate::Client::supports_event`].
    ///
    /// # Errors
    /// As the async version.
    pub fn supports_event<E: Event>(&self) -> Result<bool> {
        Ok(self.peer_schema()?.has_event(E::NAME))
    }

    /// Answers a libvirt schema query; see [`crate::Client::supports_probe`].
    ///
    /// # Errors
    /// As the async version.
    pub fn supports_probe(&self, query: &str) -> Result<bool> {
        self.peer_schema()?.probe(query).map_err(Error::probe)
    }

    /// Whether `C`'s arguments have the member at `path`; see
    /// [`crate::Client::supports_member`].
    ///
    /// # Errors
    /// As the async version.
    pub fn supports_member<C: Command>(&self, path: &str) -> Result<bool> {
        self.supports_probe(&format!("{}/arg-type/{path}", C::NAME))
    }

    /// Whether the enum at `path` in `C`'s arguments lists `value`; see
    /// [`crate::Client::supports_value`].
    ///
    /// # Errors
    /// As the async version.
    pub fn supports_value<C: Command>(&self, path: &str, value: &str) -> Result<bool> {
        self.supports_probe(&format!("{}/arg-type/{path}/^{value}", C::NAME))
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

    /// Subscribes to one event type; see [`crate::Client::subscribe`].
    pub fn subscribe<E: Event + Send + 'static>(&self) -> Events<E> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe(),
        }
    }

    /// Subscribes to an event set; see [`crate::Client::subscribe_set`].
    pub fn subscribe_set<S: EventSet + Send + 'static>(&self) -> Events<S> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_all(),
        }
    }

    /// Subscribes to every event undecoded; see [`crate::Client::subscribe_raw`].
    pub fn subscribe_raw(&self) -> Events<RawEvent> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_raw(),
        }
    }

    /// Subscribes to one event type with the overflow mode chosen at creation; see
    /// [`crate::Client::subscribe_with`].
    pub fn subscribe_with<E: Event + Send + 'static>(&self, overflow: Overflow) -> Events<E> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_with(overflow),
        }
    }

    /// Subscribes to an event set with the overflow mode chosen at creation; see
    /// [`crate::Client::subscribe_set_with`].
    pub fn subscribe_set_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Events<S> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_all_with(overflow),
        }
    }

    /// Subscribes to every event undecoded with the overflow mode chosen at creation;
    /// see [`crate::Client::subscribe_raw_with`].
    pub fn subscribe_raw_with(&self, overflow: Overflow) -> Events<RawEvent> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_raw_with(overflow),
        }
    }

    /// Closes the connection and waits for the disconnect to complete.
    pub fn close(&self) {
        self.runtime.block_on(self.inner.close());
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
    /// Blocks for the next event; `None` once the connection is closed.
    pub fn recv(&mut self) -> Option<Result<T>> {
        self.runtime.block_on(self.stream.next())
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` (`Err(Timeout)` with
    /// command `"event"`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Result<T>> {
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, self.stream.next()).await })
            .unwrap_or_else(|_| {
                Some(Err(Error::timeout(
                    "event",
                    crate::TimeoutStage::Unanswered,
                )))
            })
    }
}

impl<T: Send + 'static> Iterator for Events<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.recv()
    }
}
