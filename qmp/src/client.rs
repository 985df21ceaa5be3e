//! [`Client`]: the cheap, cloneable handle through which calls are made and events
//! subscribed.

use std::borrow::Cow;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::connection::{self, Outgoing, ReplyLine, ReplyResult, Shared};
use crate::error::{Error, Progress, Result};
use crate::events::{self, EventStream, RawEvent};
use crate::message::{write_request, ExecKind, Greeting};
use crate::peer::{PeerSchema, Role};
use crate::state::{ConnectionState, ConnectionStateWatch};
use crate::{Command, Event, EventSet, Overflow};

/// A handle to a QMP connection. Clone it freely: all clones share the connection.
///
/// The connection closes when [`close`](Self::close) is called, when the peer goes
/// away, or when the last handle is dropped. See the crate documentation for the
/// ordering, cancellation, timeout and disconnect guarantees.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Box<Outgoing>>,
    timeout: Option<Duration>,
    /// Whether typed calls are checked against the peer's schema once it is known
    /// (`crate::peer`).
    refuse: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.shared.state.current())
            .field("oob", &self.shared.oob)
            .field("timeout", &self.timeout)
            .field("refuse", &self.refuse)
            .field("peer_schema_known", &self.shared.peer.get().is_some())
            .finish()
    }
}

/// What [`Client::call`] sends.
struct CallSpec<'a, A: ?Sized> {
    kind: ExecKind,
    name: Cow<'static, str>,
    args: Option<&'a A>,
    fds: Vec<OwnedFd>,
    with_id: bool,
    timeout: Option<Duration>,
}

/// Removes the pending entry if the call future is dropped before it completes, so a
/// cancelled call never leaves state behind (its late reply is then logged and dropped).
struct CallGuard<'a> {
    shared: &'a Shared,
    id: Option<u64>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if self.shared.abandon(id).is_some() {
                tracing::debug!(target: "qmp::client", id, "call dropped before its reply");
            }
        }
    }
}

impl Client {
    pub(crate) fn new(
        shared: Arc<Shared>,
        tx: mpsc::UnboundedSender<Box<Outgoing>>,
        timeout: Option<Duration>,
        refuse: bool,
    ) -> Self {
        Client {
            shared,
            tx,
            timeout,
            refuse,
        }
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.shared.greeting
    }

    /// Whether the `oob` capability was negotiated (so [`execute_oob`](Self::execute_oob)
    /// works and requests pipeline).
    pub fn oob_enabled(&self) -> bool {
        self.shared.oob
    }

    /// Whether file descriptors can be passed on this connection (Unix sockets).
    pub fn fd_passing(&self) -> bool {
        self.shared.fd_passing
    }

    /// The maximum incoming message size in force.
    pub fn max_message_size(&self) -> usize {
        self.shared.max_message
    }

    /// The default call timeout of this handle.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// A handle to the same connection whose calls use `timeout` instead (`None`:
    /// wait forever).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// The connection's state now (not the VM's: that is `query-status`).
    pub fn connection_state(&self) -> ConnectionState {
        self.shared.state.current()
    }

    /// A watcher of the connection's state (sees every transition from now on).
    pub fn watch_connection_state(&self) -> ConnectionStateWatch {
        self.shared.state.watch()
    }

    /// The old name of [`connection_state`](Self::connection_state).
    #[deprecated(note = "renamed to `Client::connection_state`")]
    pub fn state(&self) -> ConnectionState {
        self.connection_state()
    }

    /// The old name of [`watch_connection_state`](Self::watch_connection_state).
    #[deprecated(
        note = "renamed to `Client::watch_connection_state` (the VM's run state is `query-status`)"
    )]
    pub fn run_state(&self) -> ConnectionStateWatch {
        self.watch_connection_state()
    }

    /// Whether the connection is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Closes the connection and waits until the disconnect has completed (every
    /// pending call failed with [`crate::ErrorKind::Closed`]).
    pub async fn close(&self) {
        let mut watch = self.watch_connection_state();
        self.shared.close();
        if self.connection_state() != ConnectionState::Idle {
            watch.wait_for(ConnectionState::Idle).await;
        }
    }

    /// Waits until the connection is gone (peer closed, error, or closed by a handle),
    /// then returns the error that ended it.
    pub async fn closed(&self) -> Error {
        self.shared.closed().await;
        let mut watch = self.watch_connection_state();
        if self.connection_state() != ConnectionState::Idle {
            watch.wait_for(ConnectionState::Idle).await;
        }
        self.shared
            .error_if_closed()
            .unwrap_or_else(|| Error::closed("connection closed"))
    }

    /// Runs a command and decodes its reply.
    ///
    /// Not sent until the future is first polled. Dropping the future cancels the
    /// call: if it was still queued it is not sent; if it was sent, its reply is
    /// dropped when it arrives.
    ///
    /// For commands declared `SUCCESS_RESPONSE = false` (QEMU sends no reply on
    /// success), this returns once the request is queued, decoding the reply type from
    /// `{}`.
    ///
    /// When the peer's schema is known (fetched by [`peer_schema`](Self::peer_schema),
    /// a `supports*` call or at connect) and it lacks the command, an argument member
    /// or an enum value `cmd` uses, the call fails without sending anything, unless
    /// refusal is off ([`with_refusal`](Self::with_refusal)); see [`crate::peer`].
    ///
    /// # Errors
    /// [`crate::ErrorKind::Qmp`] for an error reply, [`crate::ErrorKind::Decode`] when
    /// the reply does not match `C::Reply`, [`crate::ErrorKind::Timeout`],
    /// [`crate::ErrorKind::Unsupported`] for a call refused before sending
    /// ([`Error::unsupported_by_peer`] says what the peer lacks), or the error that
    /// closed the connection.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.execute_as(ExecKind::Execute, cmd, Vec::new()).await
    }

    /// Runs a command out of band (`exec-oob`): QEMU handles it at once, even while
    /// an in-band command is running. Needs the `oob` capability and a command that
    /// allows it (`C::ALLOW_OOB`).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Unsupported`] without `oob` or when `C` does not allow it;
    /// otherwise as [`execute`](Self::execute).
    pub async fn execute_oob<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        if !C::ALLOW_OOB {
            return Err(Error::unsupported(format!(
                "`{}` does not allow out-of-band execution",
                C::NAME
            )));
        }
        self.execute_as(ExecKind::ExecOob, cmd, Vec::new()).await
    }

    /// Runs a command passing file descriptors with it (`SCM_RIGHTS`), e.g. `getfd` or
    /// `add-fd`. The fds are closed on our side once sent.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Unsupported`] unless connected over a Unix socket;
    /// otherwise as [`execute`](Self::execute).
    pub async fn execute_with_fds<C: Command>(
        &self,
        cmd: &C,
        fds: Vec<OwnedFd>,
    ) -> Result<C::Reply> {
        self.execute_as(ExecKind::Execute, cmd, fds).await
    }

    async fn execute_as<C: Command>(
        &self,
        kind: ExecKind,
        cmd: &C,
        fds: Vec<OwnedFd>,
    ) -> Result<C::Reply> {
        // One atomic load while the schema is unknown (`crate::peer`).
        if self.refuse {
            if let Some(peer) = self.shared.peer.get() {
                self.refuse_absent::<C>(peer, cmd)?;
            }
        }
        let spec = CallSpec {
            kind,
            name: Cow::Borrowed(C::NAME),
            args: Some(cmd),
            fds,
            with_id: true,
            timeout: self.timeout,
        };
        if !C::SUCCESS_RESPONSE {
            self.send_only(spec)?;
            return decode_no_reply::<C::Reply>(C::NAME);
        }
        let reply = self.call(spec).await?;
        decode_reply::<C::Reply>(C::NAME, &reply)
    }

    #[cold]
    fn refuse_absent<C: Command>(&self, peer: &PeerSchema, cmd: &C) -> Result<()> {
        let Some(absent) = peer.lacks_typed(cmd) else {
            return Ok(());
        };
        let absent_text = absent.to_string();
        let message = crate::peer::Refusal {
            command: C::NAME,
            absent,
            greeting: &self.shared.greeting,
        }
        .to_string();
        tracing::debug!(target: "qmp::client", command = C::NAME, %message, "refused before sending");
        Err(Error::refused(C::NAME, absent_text, message))
    }

    /// The peer's schema (its `query-qmp-schema`), fetched on the first call and kept
    /// for the connection; see [`crate::peer`] for when it is fetched, how
    /// concurrent first calls share one fetch, and how it is shared between
    /// connections.
    ///
    /// # Errors
    /// The error that ended the fetch (closed, timeout, an error reply, or
    /// [`crate::ErrorKind::Decode`] for a reply that is not a schema), to every caller
    /// waiting on it; a later call fetches again.
    pub async fn peer_schema(&self) -> Result<Arc<PeerSchema>> {
        if let Some(s) = self.shared.peer.get() {
            return Ok(s.clone());
        }
        loop {
            match self.shared.peer.join() {
                Role::Known(s) => return Ok(s),
                Role::Wait(rx) => {
                    if let Some(outcome) = crate::peer::wait(rx).await {
                        return outcome;
                    }
                    // The caller that was fetching was cancelled: join again.
                }
                Role::Lead(leader) => {
                    let outcome = self.fetch_peer_schema().await;
                    return leader.finish(outcome);
                }
            }
        }
    }

    async fn fetch_peer_schema(&self) -> Result<Arc<PeerSchema>> {
        const NAME: &str = "query-qmp-schema";
        let reply = self
            .call(CallSpec {
                kind: ExecKind::Execute,
                name: Cow::Borrowed(NAME),
                args: None::<&()>,
                fds: Vec::new(),
                with_id: true,
                timeout: self.timeout,
            })
            .await?;
        if reply.is_error {
            decode_reply::<serde::de::IgnoredAny>(NAME, &reply)?;
        }
        crate::peer::shared(reply.value(), &self.shared.greeting).map_err(Error::bad_schema)
    }

    /// The peer's schema if it is already known (fetched by an earlier call or at
    /// connect); never fetches.
    pub fn peer_schema_if_known(&self) -> Option<Arc<PeerSchema>> {
        self.shared.peer.get().cloned()
    }

    /// Whether the peer has command `C` (fetching its schema on first use).
    ///
    /// # Errors
    /// As [`peer_schema`](Self::peer_schema).
    pub async fn supports<C: Command>(&self) -> Result<bool> {
        match self.shared.peer.get() {
            Some(s) => Ok(s.has_command(C::NAME)),
            None => Ok(self.peer_schema().await?.has_command(C::NAME)),
        }
    }

    /// Whether the peer has event `E` (fetching its schema on first use).
    ///
    /// # Errors
    /// As [`peer_schema`](Self::peer_schema).
    pub async fn supports_event<E: Event>(&self) -> Result<bool> {
        match self.shared.peer.get() {
            Some(s) => Ok(s.has_event(E::NAME)),
            None => Ok(self.peer_schema().await?.has_event(E::NAME)),
        }
    }

    /// Answers a libvirt schema query, e.g. `blockdev-add/arg-type/+file/aio/^io_uring`
    /// (grammar: [`crate::probe`]), fetching the schema on first use.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Probe`] for a malformed query (whatever the peer); else as
    /// [`peer_schema`](Self::peer_schema).
    pub async fn supports_probe(&self, query: &str) -> Result<bool> {
        let answer = match self.shared.peer.get() {
            Some(s) => s.probe(query),
            None => self.peer_schema().await?.probe(query),
        };
        answer.map_err(Error::probe)
    }

    /// Whether `C`'s arguments have the member at `path` in the peer's schema: a
    /// probe path below `arg-type`, e.g. `supports_member::<BlockdevAdd>("+file/aio")`.
    ///
    /// # Errors
    /// As [`supports_probe`](Self::supports_probe).
    pub async fn supports_member<C: Command>(&self, path: &str) -> Result<bool> {
        self.supports_probe(&format!("{}/arg-type/{path}", C::NAME))
            .await
    }

    /// Whether the enum at `path` in `C`'s arguments lists `value` in the peer's
    /// schema, e.g. `supports_value::<BlockdevAdd>("+file/aio", "io_uring")`.
    ///
    /// # Errors
    /// As [`supports_probe`](Self::supports_probe).
    pub async fn supports_value<C: Command>(&self, path: &str, value: &str) -> Result<bool> {
        self.supports_probe(&format!("{}/arg-type/{path}/^{value}", C::NAME))
            .await
    }

    /// Whether this handle's typed calls are refused before sending when the peer's
    /// known schema lacks what they use (default: [`crate::Config::refuse_unsupported`],
    /// on).
    pub fn refuses_unsupported(&self) -> bool {
        self.refuse
    }

    /// A handle to the same connection whose typed calls are (`true`) or are not
    /// (`false`) refused before sending when the peer's known schema lacks what they
    /// use. The schema itself is per connection and stays shared.
    pub fn with_refusal(&self, refuse: bool) -> Client {
        Client {
            refuse,
            ..self.clone()
        }
    }

    /// Runs a command by name with JSON arguments (`None`, or anything that
    /// serializes to `{}`/`null`, sends no `arguments`), returning the `return` value.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.raw(ExecKind::Execute, name, args, true).await
    }

    /// Like [`execute_raw`](Self::execute_raw), out of band (no `ALLOW_OOB` check:
    /// QEMU refuses what it does not allow).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Unsupported`] without `oob`; otherwise as
    /// [`execute`](Self::execute).
    pub async fn execute_oob_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.raw(ExecKind::ExecOob, name, args, true).await
    }

    /// Runs a command by name without an `id`. QEMU answers id-less in-band requests
    /// in order, so the reply is matched to the oldest id-less call still waiting. Use
    /// this only for peers that cannot handle ids; prefer [`execute_raw`](Self::execute_raw).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_raw_without_id<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.raw(ExecKind::Execute, name, args, false).await
    }

    /// Runs a command by name with JSON arguments and file descriptors.
    ///
    /// # Errors
    /// As [`execute_with_fds`](Self::execute_with_fds).
    pub async fn execute_raw_with_fds<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
        fds: Vec<OwnedFd>,
    ) -> Result<serde_json::Value> {
        let spec = CallSpec {
            kind: ExecKind::Execute,
            name: Cow::Owned(name.to_owned()),
            args,
            fds,
            with_id: true,
            timeout: self.timeout,
        };
        let reply = self.call(spec).await?;
        decode_reply(name, &reply)
    }

    async fn raw<A: Serialize + ?Sized>(
        &self,
        kind: ExecKind,
        name: &str,
        args: Option<&A>,
        with_id: bool,
    ) -> Result<serde_json::Value> {
        let spec = CallSpec {
            kind,
            name: Cow::Owned(name.to_owned()),
            args,
            fds: Vec::new(),
            with_id,
            timeout: self.timeout,
        };
        let reply = self.call(spec).await?;
        decode_reply(name, &reply)
    }

    fn encode<A: Serialize + ?Sized>(
        &self,
        spec: &CallSpec<'_, A>,
        id: Option<u64>,
    ) -> Result<Vec<u8>> {
        if spec.kind == ExecKind::ExecOob && !self.shared.oob {
            return Err(Error::unsupported(format!(
                "`{}`: exec-oob needs the `oob` capability, which was not negotiated",
                spec.name
            )));
        }
        if !spec.fds.is_empty() && !self.shared.fd_passing {
            return Err(Error::unsupported(format!(
                "`{}`: file descriptors can only be passed over a Unix socket",
                spec.name
            )));
        }
        let mut bytes = Vec::with_capacity(48 + spec.name.len());
        write_request(&mut bytes, spec.kind, &spec.name, spec.args, id)
            .map_err(|e| Error::encode(&spec.name, e))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Queues a request nobody waits a reply for.
    fn send_only<A: Serialize + ?Sized>(&self, spec: CallSpec<'_, A>) -> Result<()> {
        if let Some(e) = self.shared.error_if_closed() {
            return Err(e.for_call(&spec.name, Progress::NotSent));
        }
        // With an id, so an error reply is never matched to an id-less caller.
        let bytes = self.encode(&spec, Some(self.shared.unregistered_id()))?;
        self.shared
            .send(
                &self.tx,
                Outgoing {
                    bytes,
                    id: None,
                    idless_reply: None,
                    fds: spec.fds,
                    must_send: false,
                    reported: false,
                },
            )
            .map_err(|()| self.closed_error().for_call(&spec.name, Progress::NotSent))
    }

    fn closed_error(&self) -> Error {
        self.shared
            .error_if_closed()
            .unwrap_or_else(|| Error::closed("connection closed"))
    }

    /// Sends a request and waits for its reply line.
    async fn call<A: Serialize + ?Sized>(&self, mut spec: CallSpec<'_, A>) -> Result<ReplyLine> {
        if spec.with_id {
            let (id, rx) = self.shared.register(spec.name.clone())?;
            let guard = CallGuard {
                shared: &self.shared,
                id: Some(id),
            };
            let bytes = match self.encode(&spec, Some(id)) {
                Ok(b) => b,
                Err(e) => {
                    drop(guard);
                    return Err(e);
                }
            };
            let fds = std::mem::take(&mut spec.fds);
            self.shared
                .send(
                    &self.tx,
                    Outgoing {
                        bytes,
                        id: Some(id),
                        idless_reply: None,
                        fds,
                        must_send: false,
                        reported: false,
                    },
                )
                .map_err(|()| self.closed_error().for_call(&spec.name, Progress::NotSent))?;
            self.wait(rx, guard, &spec.name, spec.timeout).await
        } else {
            if let Some(e) = self.shared.error_if_closed() {
                return Err(e.for_call(&spec.name, Progress::NotSent));
            }
            let bytes = self.encode(&spec, None)?;
            let (tx, rx) = oneshot::channel();
            let fds = std::mem::take(&mut spec.fds);
            self.shared
                .send(
                    &self.tx,
                    Outgoing {
                        bytes,
                        id: None,
                        idless_reply: Some(tx),
                        fds,
                        must_send: false,
                        reported: false,
                    },
                )
                .map_err(|()| self.closed_error().for_call(&spec.name, Progress::NotSent))?;
            let guard = CallGuard {
                shared: &self.shared,
                id: None,
            };
            self.wait(rx, guard, &spec.name, spec.timeout).await
        }
    }

    async fn wait(
        &self,
        mut rx: oneshot::Receiver<ReplyResult>,
        mut guard: CallGuard<'_>,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<ReplyLine> {
        let idless = guard.id.is_none();
        let outcome = match timeout {
            None => Ok((&mut rx).await),
            Some(t) => tokio::time::timeout(t, &mut rx).await,
        };
        match outcome {
            Ok(Ok(reply)) => {
                guard.id = None;
                // The connection's end reaches an id-less caller without its command
                // (see `connection::supervise`): it was queued just before its
                // request was written.
                reply.map_err(|e| match e.command() {
                    None if idless => e.for_call(name, Progress::Sent),
                    _ => e,
                })
            }
            Ok(Err(_)) => {
                guard.id = None;
                // The reply channel was dropped unanswered: an id-less request the
                // writer never wrote; for a call with an id this cannot happen
                // (every pending call is answered), so assume the worst.
                let progress = if idless {
                    Progress::NotSent
                } else {
                    Progress::Writing
                };
                Err(self.closed_error().for_call(name, progress))
            }
            Err(_elapsed) => {
                // `Err` from `tokio::time::timeout` only when there was one.
                let limit = timeout.unwrap_or_default();
                let stage = guard.id.take().and_then(|id| self.shared.abandon(id));
                match stage {
                    Some(stage) => {
                        tracing::debug!(target: "qmp::client", command = name, ?stage, "call timed out");
                        Err(connection::timeout_error_within(name, stage, limit))
                    }
                    // The reply (or the connection's error) arrived just as the timer
                    // fired: deliver it. Id-less calls cannot tell; they report
                    // "unanswered" unless the reply is already here.
                    None => match rx.try_recv() {
                        Ok(reply) => reply,
                        Err(_) => Err(crate::error::Error::call_timeout(
                            name,
                            crate::TimeoutStage::Unanswered,
                            limit,
                        )),
                    },
                }
            }
        }
    }

    /// Subscribes to one event type. Subscribe before sending the command whose
    /// events you want, or use [`execute_and_wait`](Self::execute_and_wait).
    ///
    /// A full buffer follows the connection's [`crate::Config::event_overflow`]; use
    /// [`subscribe_with`](Self::subscribe_with) to choose per subscription.
    pub fn subscribe<E: Event + Send + 'static>(&self) -> EventStream<E> {
        self.subscribe_one(None)
    }

    /// As [`subscribe`](Self::subscribe), with what happens when this subscription's
    /// buffer is full chosen at creation: with [`Overflow::Backpressure`] no event is
    /// missed, not even one that arrives while the subscription is being set up
    /// (setting it afterwards with [`EventStream::overflow`] leaves that window).
    pub fn subscribe_with<E: Event + Send + 'static>(&self, overflow: Overflow) -> EventStream<E> {
        self.subscribe_one(Some(overflow))
    }

    fn subscribe_one<E: Event + Send + 'static>(
        &self,
        overflow: Option<Overflow>,
    ) -> EventStream<E> {
        EventStream::new(
            self.shared.subscribe(Some(E::NAME), overflow),
            events::decode_one::<E>,
        )
    }

    /// Subscribes to every event, decoded into an [`EventSet`] (e.g. the generated
    /// all-events enum `Event`).
    pub fn subscribe_all<S: EventSet + Send + 'static>(&self) -> EventStream<S> {
        EventStream::new(self.shared.subscribe(None, None), events::decode_set::<S>)
    }

    /// As [`subscribe_all`](Self::subscribe_all), with the overflow mode chosen at
    /// creation (see [`subscribe_with`](Self::subscribe_with)).
    pub fn subscribe_all_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> EventStream<S> {
        EventStream::new(
            self.shared.subscribe(None, Some(overflow)),
            events::decode_set::<S>,
        )
    }

    /// As [`subscribe`](Self::subscribe), but each event is decoded once for all the
    /// `subscribe_shared::<E>` (and [`subscribe_shared_with`](Self::subscribe_shared_with))
    /// subscriptions of this connection that hold it, and handed to each of them as an
    /// `Arc<E>`: for several subscribers of one event type. Lag counting, overflow,
    /// ordering and buffer bounds are those of [`subscribe`](Self::subscribe); a decode
    /// error reaches every subscriber, each with its own [`Error`](crate::Error).
    pub fn subscribe_shared<E: Event + Send + Sync + 'static>(&self) -> EventStream<Arc<E>> {
        EventStream::new_shared(
            self.shared.subscribe(Some(E::NAME), None),
            events::decode_one_shared::<E>,
            events::cache_one::<E>(),
        )
    }

    /// As [`subscribe_shared`](Self::subscribe_shared), with the overflow mode chosen
    /// at creation (see [`subscribe_with`](Self::subscribe_with)).
    pub fn subscribe_shared_with<E: Event + Send + Sync + 'static>(
        &self,
        overflow: Overflow,
    ) -> EventStream<Arc<E>> {
        EventStream::new_shared(
            self.shared.subscribe(Some(E::NAME), Some(overflow)),
            events::decode_one_shared::<E>,
            events::cache_one::<E>(),
        )
    }

    /// As [`subscribe_all`](Self::subscribe_all), but each event is decoded once for
    /// all the `subscribe_all_shared::<S>` (and
    /// [`subscribe_all_shared_with`](Self::subscribe_all_shared_with)) subscriptions
    /// that hold it, and handed to each as an `Arc<S>`: for several subscribers of the
    /// same set (e.g. the generated `Event` enum). With one subscriber it costs the same
    /// as [`subscribe_all`](Self::subscribe_all) plus the `Arc`.
    pub fn subscribe_all_shared<S: EventSet + Send + Sync + 'static>(&self) -> EventStream<Arc<S>> {
        EventStream::new_shared(
            self.shared.subscribe(None, None),
            events::decode_set_shared::<S>,
            events::cache_set::<S>(),
        )
    }

    /// As [`subscribe_all_shared`](Self::subscribe_all_shared), with the overflow mode
    /// chosen at creation (see [`subscribe_with`](Self::subscribe_with)).
    pub fn subscribe_all_shared_with<S: EventSet + Send + Sync + 'static>(
        &self,
        overflow: Overflow,
    ) -> EventStream<Arc<S>> {
        EventStream::new_shared(
            self.shared.subscribe(None, Some(overflow)),
            events::decode_set_shared::<S>,
            events::cache_set::<S>(),
        )
    }

    /// Renamed to [`subscribe_all`](Self::subscribe_all) (every event, typed).
    #[deprecated(note = "renamed to subscribe_all")]
    pub fn subscribe_set<S: EventSet + Send + 'static>(&self) -> EventStream<S> {
        self.subscribe_all()
    }

    /// Renamed to [`subscribe_all_with`](Self::subscribe_all_with).
    #[deprecated(note = "renamed to subscribe_all_with")]
    pub fn subscribe_set_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> EventStream<S> {
        self.subscribe_all_with(overflow)
    }

    /// Renamed to [`subscribe_all_shared`](Self::subscribe_all_shared).
    #[deprecated(note = "renamed to subscribe_all_shared")]
    pub fn subscribe_set_shared<S: EventSet + Send + Sync + 'static>(&self) -> EventStream<Arc<S>> {
        self.subscribe_all_shared()
    }

    /// Renamed to [`subscribe_all_shared_with`](Self::subscribe_all_shared_with).
    #[deprecated(note = "renamed to subscribe_all_shared_with")]
    pub fn subscribe_set_shared_with<S: EventSet + Send + Sync + 'static>(
        &self,
        overflow: Overflow,
    ) -> EventStream<Arc<S>> {
        self.subscribe_all_shared_with(overflow)
    }

    /// Subscribes to every event, undecoded.
    pub fn subscribe_raw(&self) -> EventStream<RawEvent> {
        EventStream::new(self.shared.subscribe(None, None), events::decode_raw)
    }

    /// As [`subscribe_raw`](Self::subscribe_raw), with the overflow mode chosen at
    /// creation (see [`subscribe_with`](Self::subscribe_with)).
    pub fn subscribe_raw_with(&self, overflow: Overflow) -> EventStream<RawEvent> {
        EventStream::new(
            self.shared.subscribe(None, Some(overflow)),
            events::decode_raw,
        )
    }

    /// Runs `cmd`, then waits for the first event `E` for which `until` returns true,
    /// subscribing before the command is sent so the event cannot be missed even if
    /// it arrives before the reply. E.g. `job-dismiss` waiting for a
    /// `JOB_STATUS_CHANGE` to `null`, or `blockdev-create` waiting for `concluded`.
    /// For a job, `concluded` does not mean it succeeded (its error is only in
    /// `query-jobs`) and the job stays until dismissed: the bindings' `jobs::run`
    /// (`qemu_qapi::jobs::run`) follows a job to its end, returns its error and
    /// dismisses it.
    ///
    /// The call's timeout covers the reply only; wrap the whole future in
    /// `tokio::time::timeout` to bound the wait for the event.
    ///
    /// # Errors
    /// As [`execute`](Self::execute); [`crate::ErrorKind::Lagged`] if events were
    /// missed while waiting (the awaited one may be among them); the connection's
    /// error if it closes first.
    pub async fn execute_and_wait<C, E, F>(&self, cmd: &C, mut until: F) -> Result<(C::Reply, E)>
    where
        C: Command,
        E: Event + Send + 'static,
        F: FnMut(&E) -> bool,
    {
        let mut events = self.subscribe::<E>();
        let reply = self.execute(cmd).await?;
        loop {
            match events.next().await {
                Some(Ok(e)) if until(&e) => return Ok((reply, e)),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(self.closed_error()),
            }
        }
    }
}

/// The reply of a command that sends none (`success-response: false`): the reply
/// type decodes from `{}` (a struct) or `null` (a unit type). Also [`crate::ga`].
pub(crate) fn decode_no_reply<T: DeserializeOwned>(command: &str) -> Result<T> {
    decode_value::<T>(command, "{}", "{}").or_else(|_| decode_value::<T>(command, "null", "null"))
}

/// Decodes a reply line: the error reply as [`crate::ErrorKind::Qmp`], else its
/// `return` ([`decode_value`]). Also [`crate::ga`].
pub(crate) fn decode_reply<T: DeserializeOwned>(command: &str, reply: &ReplyLine) -> Result<T> {
    if reply.is_error {
        let body: crate::message::ErrorBody = serde_json::from_str(reply.value())
            .map_err(|e| Error::decode(command, "error".into(), reply.line.clone(), e))?;
        return Err(Error::qmp(command, body, reply.line.clone()));
    }
    decode_value(command, reply.value(), &reply.line)
}

/// Decodes `value`, the text of a reply's `return` member (`raw` the whole reply, for
/// the error), the one way every typed reply is decoded (also
/// [`crate::runtime::check_reply`]).
pub(crate) fn decode_value<T: DeserializeOwned>(
    command: &str,
    value: &str,
    raw: &str,
) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(value);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "return".to_owned()
        } else {
            format!("return.{path}")
        };
        Error::decode(command, path, raw.to_owned(), e.into_inner())
    })
}
