//! A blocking wrapper for programs that do not use async Rust.
//!
//! [`Client`] owns a small tokio runtime (one worker thread) on which the connection's
//! reader and writer tasks keep running between calls, so events are received and
//! buffered (up to the subscriber capacity) while the program does other things. Each
//! method blocks the calling thread until the async counterpart completes; the
//! guarantees are the same as the async client's (ids on every request, so a late
//! reply never reaches the next caller; timeouts; the first error on disconnect).
//!
//! Do not call these methods from inside an async runtime (they would block it).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::events::{EventStream, RawEvent};
use crate::message::Greeting;
use crate::{Command, Config, Event, EventSet};

/// A blocking QMP client. Cloning shares the connection and the runtime.
#[derive(Clone, Debug)]
pub struct Client {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: crate::Client,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("qmp-blocking")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))
}

impl Client {
    /// Connects to a QMP Unix socket with `config`.
    ///
    /// # Errors
    /// See [`Config::connect_unix`].
    pub fn connect_unix(config: &Config, path: impl AsRef<Path>) -> Result<Client> {
        let runtime = runtime()?;
        let inner = runtime.block_on(config.connect_unix(path))?;
        Ok(Client {
            runtime: Arc::new(runtime),
            inner,
        })
    }

    /// Connects to a QMP TCP socket with `config`.
    ///
    /// # Errors
    /// See [`Config::connect_tcp`].
    pub fn connect_tcp(config: &Config, addr: &str) -> Result<Client> {
        let runtime = runtime()?;
        let inner = runtime.block_on(config.connect_tcp(addr.to_owned()))?;
        Ok(Client {
            runtime: Arc::new(runtime),
            inner,
        })
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
        let runtime = runtime()?;
        let inner = runtime.block_on(async {
            listener
                .set_nonblocking(true)
                .map_err(|e| Error::io("preparing the listener", e))?;
            let listener = tokio::net::UnixListener::from_std(listener)
                .map_err(|e| Error::io("preparing the listener", e))?;
            config.accept_unix(&listener).await
        })?;
        Ok(Client {
            runtime: Arc::new(runtime),
            inner,
        })
    }

    /// The async client underneath (its futures must run on [`Self::runtime`]).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// The runtime the connection runs on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
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
            stream: self.inner.subscribe_set(),
        }
    }

    /// Subscribes to every event undecoded; see [`crate::Client::subscribe_raw`].
    pub fn subscribe_raw(&self) -> Events<RawEvent> {
        Events {
            runtime: self.runtime.clone(),
            stream: self.inner.subscribe_raw(),
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
    runtime: Arc<tokio::runtime::Runtime>,
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
