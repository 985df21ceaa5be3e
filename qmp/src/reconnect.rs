//! [`ReconnectingClient`]: a QMP connection that comes back by itself when QEMU
//! restarts, for programs that keep a monitor connection for weeks.
//!
//! It is a layer over [`Client`]: a background task makes one connection with a
//! [`Config`] to an [`Address`] (a Unix socket path or a TCP `HOST:PORT`), watches
//! it, and when it ends (QEMU exited or was restarted, the socket was removed and
//! made again, an I/O or protocol error) connects again with exponential backoff.
//! Calls go to whichever connection is current; event subscriptions
//! ([`Subscription`]) follow the connections.
//!
//! ```no_run
//! # async fn demo() -> Result<(), qmp::Error> {
//! use std::time::Duration;
//! use qmp::reconnect::ReconnectingClient;
//!
//! let qmp = ReconnectingClient::unix(&qmp::Config::new(), "/run/vm1/qmp.sock")
//!     .initial_delay(Duration::from_millis(200))
//!     .max_delay(Duration::from_secs(10))
//!     .connect()
//!     .await?;
//! let mut events = qmp.subscribe_raw();
//! while let Some(event) = events.next().await {
//!     match event {
//!         Ok(e) => println!("{}", e.name()),
//!         // QEMU went away and came back: whatever we track from events is stale.
//!         Err(e) if e.is_gap() => {
//!             let status = qmp.execute_raw("query-status", None::<&()>).await?;
//!             println!("reconnected, status {status}");
//!         }
//!         Err(e) if e.is_lagged() => eprintln!("missed {:?} events", e.missed_events()),
//!         Err(e) => return Err(e),
//!     }
//! }
//! // The stream ended: the client gave up or was closed; `closed` says why.
//! eprintln!("{}", qmp.closed().await);
//! # Ok(()) }
//! ```
//!
//! # Reconnecting
//!
//! When a connection ends, the state goes [`ReconnectState::Reconnecting`] and the
//! client waits [`Builder::initial_delay`] (100 ms by default), tries, and doubles the
//! wait after each failed attempt up to [`Builder::max_delay`] (30 s by default). Each
//! attempt is one [`Config::connect_unix`] or [`Config::connect_tcp`], bounded by the
//! `Config`'s connect timeout. A successful connection resets the count, so a QEMU that
//! accepts and then drops every connection is retried every `initial_delay`. By default
//! it never gives up; [`Builder::give_up_after_attempts`] and
//! [`Builder::give_up_after`] set limits, after which the state is
//! [`ReconnectState::GivenUp`] for good: calls fail with an error naming the address,
//! the number of attempts and the last attempt's error ([`ReconnectingClient::closed`]
//! returns it too), and subscriptions end.
//!
//! The first connection is made by [`Builder::connect`], once: if it fails, that
//! error is returned and nothing runs in the background (a wrong path shows at once).
//! [`Builder::start`] instead returns at once and makes the first connection in the
//! background, with the same backoff and limits (state
//! [`ReconnectState::Connecting`]), for a program started before QEMU.
//!
//! # Calls
//!
//! **Never replayed.** A call is sent on one connection only. If that connection ends
//! before the reply arrives, the call fails with the connection's error
//! ([`Error::is_closed`]) naming the command, saying whether it was sent and that it
//! was *not* retried ("`query-status` was sent, but QEMU closed the connection before
//! answering (it may have run): end of stream; connection #1 to QEMU at unix:… was
//! lost; the command was NOT retried: …"). [`Error::may_have_run`] is then true: QEMU
//! may or may not have run it (a `device_del` or `migrate` must not be run twice
//! blindly); check, then call again if that is safe. A call whose request was still
//! queued when the connection ended has [`Error::is_not_sent`] instead: calling
//! again is safe. Every error of a call that got no connection (below) is
//! [`Error::is_not_sent`] too.
//!
//! **While reconnecting**, a call waits for the next connection, then is sent on it
//! (by default; [`Builder::wait_while_reconnecting`] makes it fail at once
//! instead, without sending anything). The wait is bounded by the handle's timeout
//! ([`Builder::call_timeout`], [`ReconnectingClient::with_timeout`]), which then
//! covers the wait and the call together; without one it waits until connected, given
//! up or closed. A wait that times out fails with
//! [`ErrorKind::Timeout`] and the command was not sent.
//! Without a handle timeout, the call itself is bounded by the `Config`'s
//! [`call_timeout`](Config::call_timeout) once it is sent.
//!
//! **Ordering.** Calls sent on one connection are ordered as [`Client`] calls are.
//! Calls waiting for a connection are all released when it comes, in no particular
//! order between tasks; calls made one after the other from one task keep their order.
//!
//! **Direct access.** [`ReconnectingClient::current`] returns the current
//! connection's [`Client`] (for what this layer does not wrap: `execute_oob`, fds,
//! schema queries…). That handle is one connection's: once that connection ends its
//! calls fail with the connection's error; ask `current` again. Closing it counts as
//! losing the connection: the client reconnects.
//!
//! # Events
//!
//! A [`Subscription`] made on the reconnecting client yields the events of the
//! connection current when it was made, then those of each later connection. Between
//! two connections it yields one `Err` for which [`Error::is_gap`] is true (a
//! [`Lagged`](crate::ErrorKind::Lagged) error, as lagging is reported, but with no
//! count: [`Error::missed_events`] is `None`): events QEMU sent while nobody was
//! connected are lost, and a restarted QEMU is a new machine state. Query whatever you
//! track from events again when you see it.
//!
//! **Ordering.** Within one connection, events come in the order received, exactly as
//! with [`Client::subscribe`] (including [`Lagged`](crate::ErrorKind::Lagged) counts
//! when the subscription's buffer overflows). A subscription yields every event of
//! the old connection it had received before the gap notice, and nothing of the old
//! connection after it. It is attached to each new connection before any call can be
//! made on it, so it starts with the events QEMU sent from the negotiation on (with
//! [`Config::fetch_peer_schema`], which makes a request while connecting, from the
//! end of connecting on: the gap notice covers what came before).
//!
//! **Skipped connections.** A connection that comes and goes while the subscription
//! is still reading an older one, or is not read at all, is skipped: the subscription
//! moves to the newest connection with a single gap notice. A subscription made
//! before the first connection ([`Builder::start`]) yields no gap notice before that
//! connection's events, unless it skipped it.
//!
//! **End.** A subscription ends (`None`) when the client has given up or was closed,
//! after the events it holds.
//!
//! # State
//!
//! [`ReconnectingClient::connection_state`] is the [`ReconnectState`] now;
//! [`ReconnectingClient::watch_connection_state`] returns a [`ReconnectStateWatch`]
//! (the same [`crate::StateWatch`] as a connection's
//! [`crate::ConnectionStateWatch`]) that reports every transition in order (each
//! attempt is one: `Reconnecting { attempt: 1, .. }`, `Reconnecting { attempt: 2, ..
//! }`, …, `Connected { connection: 2 }`). A connection's own
//! [`crate::ConnectionState`] stays on its [`Client`]
//! ([`Client::watch_connection_state`]) and on the [`Config`]
//! ([`Config::watch_connection_state`]).
//!
//! # Cancellation
//!
//! Dropping a call's future cancels it as [`Client`] calls are cancelled; one dropped
//! while waiting for a connection has sent nothing. Dropping a [`Subscription`]
//! unsubscribes it from the current connection and from later ones. Dropping
//! [`Builder::connect`]'s future closes its socket. Dropping the last
//! [`ReconnectingClient`] handle closes it: the connection is closed, reconnecting
//! stops, subscriptions end ([`Client`]s from [`current`](ReconnectingClient::current)
//! do not keep it alive).
//!
//! # Disconnect
//!
//! When a connection drops, its pending calls fail (never retried,
//! see [Calls](self#calls)), [`current`](ReconnectingClient::current) becomes `None`,
//! the state goes `Reconnecting { attempt: 1, .. }`, and subscriptions yield the
//! events they hold. Once a new connection is made, subscriptions are attached to it,
//! the state goes `Connected`, waiting calls are sent, and each subscription yields its
//! gap notice when it reaches the end of the old connection's events.
//!
//! [`ReconnectingClient::close`] stops reconnecting, closes the current connection
//! (failing its pending calls; calls waiting for a connection fail too), ends the
//! subscriptions and waits until all of that is done; the state is then
//! [`ReconnectState::Closed`] for good. Each connection lost is logged at `warn`, each
//! new one at `info` and every failed attempt at `debug`, under the target
//! `qmp::reconnect`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::{ErrorKind, Limit};
use crate::state::StateSender;
use crate::{
    Client, Command, Config, Error, Event, EventSet, EventStream, Overflow, RawEvent, Result,
};

/// The default wait before the first attempt after a connection is lost.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The default longest wait between two attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// The shortest wait between attempts: [`Builder::initial_delay`] is raised to it, so
/// a zero delay cannot make the client spin.
pub const MIN_DELAY: Duration = Duration::from_millis(1);

/// Where QEMU's monitor listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A Unix socket path (QEMU's `-qmp unix:PATH,server=on,wait=off`, or
    /// `-chardev socket,path=PATH,server=on,wait=off`).
    Unix(PathBuf),
    /// A TCP address, `HOST:PORT`, resolved again at each attempt.
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Where a [`ReconnectingClient`] is (see the [module docs](self#state)); one
/// connection's own state is [`crate::ConnectionState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectState {
    /// Making the first connection ([`Builder::start`] only): `attempt` (from 1) is
    /// under way or waited for.
    Connecting {
        /// The attempt under way, or the next one.
        attempt: u32,
    },
    /// Connected; calls are sent at once.
    Connected {
        /// Which connection this is, from 1 (2 after the first reconnection, …).
        connection: u64,
    },
    /// The connection was lost; `attempt` (from 1) is under way or waited for.
    Reconnecting {
        /// The attempt under way, or the next one.
        attempt: u32,
        /// When the connection was lost.
        since: Instant,
    },
    /// A give-up limit was reached; final. Calls fail, subscriptions have ended.
    GivenUp {
        /// How many attempts failed.
        attempts: u32,
        /// When the connection was lost (or, without one ever, when trying started).
        since: Instant,
    },
    /// Closed by [`ReconnectingClient::close`] or by dropping its last handle; final.
    Closed,
}

impl ReconnectState {
    /// Whether calls are sent at once (the state is `Connected`).
    pub fn is_connected(&self) -> bool {
        matches!(self, ReconnectState::Connected { .. })
    }

    /// Whether the state can no longer change (`GivenUp` or `Closed`).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReconnectState::GivenUp { .. } | ReconnectState::Closed
        )
    }
}

impl fmt::Display for ReconnectState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconnectState::Connecting { attempt } => {
                write!(f, "connecting for the first time (attempt {attempt})")
            }
            ReconnectState::Connected { connection } => {
                write!(f, "connected (connection #{connection})")
            }
            ReconnectState::Reconnecting { attempt, since } => write!(
                f,
                "reconnecting (attempt {attempt}, connection lost {:.1?} ago)",
                since.elapsed()
            ),
            ReconnectState::GivenUp { attempts, .. } => {
                write!(f, "given up after {attempts} failed attempt(s)")
            }
            ReconnectState::Closed => f.write_str("closed"),
        }
    }
}

/// How many transitions are kept for watchers that have not looked yet (one per
/// attempt, so a watcher that does not look through a long outage is told how many
/// it skipped, [`Transition::skipped`](crate::Transition::skipped)).
const HISTORY: usize = 64;

/// Watches a [`ReconnectingClient`]'s [`ReconnectState`], seeing every transition
/// in order (the same [`crate::StateWatch`] as a connection's
/// [`crate::ConnectionStateWatch`]). Created by
/// [`ReconnectingClient::watch_connection_state`]; it reports the transitions made
/// after it was created, and its `next` ends once a final state was seen.
pub type ReconnectStateWatch = crate::StateWatch<ReconnectState>;

/// The old name of [`ReconnectStateWatch`].
#[deprecated(note = "renamed to `qmp::reconnect::ReconnectStateWatch` (a `qmp::StateWatch`)")]
pub type StateWatch = ReconnectStateWatch;

/// The old name of a [`ReconnectStateWatch`]'s transition.
#[deprecated(note = "renamed to `qmp::Transition<qmp::reconnect::ReconnectState>`")]
pub type StateTransition = crate::Transition<ReconnectState>;

/// The old name of [`ReconnectState`].
#[deprecated(
    note = "renamed to `qmp::reconnect::ReconnectState` (`qmp::ConnectionState` is one connection's state)"
)]
pub type ConnectionState = ReconnectState;

/// Options of a [`ReconnectingClient`], a builder made by
/// [`ReconnectingClient::unix`], [`ReconnectingClient::tcp`] or
/// [`ReconnectingClient::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
    address: Address,
    policy: Policy,
}

#[derive(Debug, Clone, Copy)]
struct Policy {
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
    wait_while_reconnecting: bool,
    call_timeout: Option<Duration>,
}

impl Builder {
    /// The wait before the first attempt after a connection is lost (100 ms by
    /// default, at least [`MIN_DELAY`]). Each failed attempt doubles it, up to
    /// [`max_delay`](Self::max_delay).
    pub fn initial_delay(&mut self, d: Duration) -> &mut Self {
        self.policy.initial_delay = d.max(MIN_DELAY);
        self
    }

    /// The longest wait between two attempts (30 s by default; never less than the
    /// initial delay).
    pub fn max_delay(&mut self, d: Duration) -> &mut Self {
        self.policy.max_delay = d;
        self
    }

    /// Gives up after `n` failed attempts in a row (`None`, the default: never; 0 is
    /// taken as 1).
    pub fn give_up_after_attempts(&mut self, n: Option<u32>) -> &mut Self {
        self.policy.max_attempts = n.map(|n| n.max(1));
        self
    }

    /// Gives up when no attempt succeeded within `d` of the connection being lost (no
    /// attempt starts later than that; `None`, the default: never).
    pub fn give_up_after(&mut self, d: Option<Duration>) -> &mut Self {
        self.policy.max_elapsed = d;
        self
    }

    /// Whether a call made while reconnecting waits for the next connection (`true`,
    /// the default, bounded by the handle's timeout) or fails at once, unsent, with an
    /// error of kind [`Closed`](crate::ErrorKind::Closed).
    pub fn wait_while_reconnecting(&mut self, yes: bool) -> &mut Self {
        self.policy.wait_while_reconnecting = yes;
        self
    }

    /// The default timeout of the client's calls, covering the wait for a connection
    /// and the call (`None`, the default: the wait is unbounded and the call is
    /// bounded by the `Config`'s [`call_timeout`](Config::call_timeout)). Change it
    /// per handle with [`ReconnectingClient::with_timeout`].
    pub fn call_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.policy.call_timeout = t;
        self
    }

    /// Makes the first connection (one attempt), then keeps it up in the background.
    ///
    /// # Errors
    /// The first attempt's error, as [`Config::connect_unix`] or
    /// [`Config::connect_tcp`] returns it; nothing is left running then.
    pub async fn connect(&self) -> Result<ReconnectingClient> {
        let client = connect_once(&self.config, &self.address).await?;
        Ok(self.launch(Some(client)))
    }

    /// Returns at once and makes the first connection in the background with the
    /// backoff and limits set here (state [`ReconnectState::Connecting`]); calls made
    /// meanwhile wait for it as they wait while reconnecting.
    ///
    /// Must be awaited within a Tokio runtime (it spawns the background task).
    pub async fn start(&self) -> ReconnectingClient {
        self.launch(None)
    }

    fn launch(&self, first: Option<Client>) -> ReconnectingClient {
        let initial = match &first {
            Some(_) => ReconnectState::Connected { connection: 1 },
            None => ReconnectState::Connecting { attempt: 1 },
        };
        let state = StateSender::new(initial, HISTORY, ReconnectState::is_final);
        let generation = u64::from(first.is_some());
        let inner = Arc::new(Inner {
            config: self.config.clone(),
            address: self.address.clone(),
            policy: self.policy,
            shared: Mutex::new(Shared {
                client: first.clone(),
                generation,
                end: None,
                last_error: None,
                slots: Vec::new(),
            }),
            state,
            close: watch::channel(false).0,
        });
        if first.is_some() {
            tracing::info!(target: "qmp::reconnect", address = %inner.address, "connected");
        }
        tokio::spawn(manage(inner.clone(), first));
        ReconnectingClient {
            life: Arc::new(Life(inner)),
            timeout: self.policy.call_timeout,
        }
    }
}

async fn connect_once(config: &Config, address: &Address) -> Result<Client> {
    match address {
        Address::Unix(path) => config.connect_unix(path).await,
        Address::Tcp(addr) => config.connect_tcp(addr.clone()).await,
    }
}

/// What the background task and the handles share.
struct Inner {
    config: Config,
    address: Address,
    policy: Policy,
    shared: Mutex<Shared>,
    state: StateSender<ReconnectState>,
    /// Set to `true` to stop: [`ReconnectingClient::close`] or the last handle dropped.
    close: watch::Sender<bool>,
}

struct Shared {
    /// The connection calls go to, while connected.
    client: Option<Client>,
    /// How many connections were made.
    generation: u64,
    /// Why the client stopped for good (given up, closed).
    end: Option<String>,
    /// The error of the last failed attempt, or the one that ended the last connection.
    last_error: Option<Error>,
    /// The subscriptions to attach to each new connection.
    slots: Vec<Weak<dyn Attach>>,
}

/// How the connection ended for good.
enum End {
    Closed,
    GaveUp {
        attempts: u32,
        since: Instant,
        error: Error,
    },
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing panics while holding it; a poisoned lock still holds consistent data.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: ReconnectState) {
        self.state.set(state);
        tracing::debug!(target: "qmp::reconnect", ?state, "state");
    }

    fn state(&self) -> ReconnectState {
        self.state.current()
    }

    fn close_requested(&self) -> bool {
        *self.close.borrow()
    }

    /// Publishes a new connection: every live subscription gets a stream of it first,
    /// so none misses its first events, then calls can use it.
    fn install(&self, client: &Client, lost: Option<&Lost>, attempts: u32) {
        let mut sh = self.lock();
        sh.generation += 1;
        let generation = sh.generation;
        let why: Arc<str> = match lost {
            Some(lost) => format!(
                "the connection to QEMU at {} was lost ({}) and re-established {:.1?} later, \
                 after {attempts} attempt(s) (connection #{generation})",
                self.address,
                lost.error,
                lost.since.elapsed()
            )
            .into(),
            None => format!(
                "the first connection to QEMU at {} was made after {attempts} attempt(s)",
                self.address
            )
            .into(),
        };
        sh.slots.retain(|w| match w.upgrade() {
            Some(slot) => {
                slot.attach(generation, client, &why);
                true
            }
            None => false,
        });
        sh.client = Some(client.clone());
        self.set_state(ReconnectState::Connected {
            connection: generation,
        });
        drop(sh);
        tracing::info!(target: "qmp::reconnect", address = %self.address, connection = generation, attempts, "connected");
    }

    fn lose(&self, lost: &Lost) {
        let mut sh = self.lock();
        sh.client = None;
        sh.last_error = Some(lost.error.clone());
        self.set_state(ReconnectState::Reconnecting {
            attempt: 1,
            since: lost.since,
        });
        drop(sh);
        tracing::warn!(target: "qmp::reconnect", address = %self.address, error = %lost.error, "connection lost; reconnecting");
    }

    fn finish(&self, end: End) {
        let mut sh = self.lock();
        sh.client = None;
        let (why, state) = match end {
            End::Closed => (
                format!(
                    "the reconnecting client for QEMU at {} was closed",
                    self.address
                ),
                ReconnectState::Closed,
            ),
            End::GaveUp {
                attempts,
                since,
                error,
            } => {
                tracing::warn!(target: "qmp::reconnect", address = %self.address, attempts, %error, "gave up reconnecting");
                (
                    format!(
                        "gave up connecting to QEMU at {} after {attempts} failed attempt(s) \
                         over {:.1?} (the reconnecting client's give-up limit); last error: {error}",
                        self.address,
                        since.elapsed()
                    ),
                    ReconnectState::GivenUp { attempts, since },
                )
            }
        };
        sh.end = Some(why);
        for slot in sh.slots.drain(..) {
            if let Some(slot) = slot.upgrade() {
                slot.finish();
            }
        }
        self.set_state(state);
    }

    /// Connects, waiting between attempts; `lost` is `None` for the first connection.
    async fn connect_with_backoff(&self, lost: Option<&Lost>) -> Result<(Client, u32), End> {
        let p = &self.policy;
        let since = lost.map_or_else(Instant::now, |l| l.since);
        let mut delay = p.initial_delay;
        let mut attempt = 1u32;
        let mut close = self.close.subscribe();
        loop {
            self.set_state(match lost {
                Some(_) => ReconnectState::Reconnecting { attempt, since },
                None => ReconnectState::Connecting { attempt },
            });
            // The first connection is tried at once; after a loss QEMU needs a moment
            // to come back, and a QEMU that drops every connection is not hammered.
            if lost.is_some() || attempt > 1 {
                let sleep = tokio::time::sleep(delay);
                if let First::A(()) = race(closing(&mut close), sleep).await {
                    return Err(End::Closed);
                }
                delay = delay
                    .saturating_mul(2)
                    .min(p.max_delay.max(p.initial_delay));
            }
            let error = match race(
                closing(&mut close),
                connect_once(&self.config, &self.address),
            )
            .await
            {
                First::A(()) => return Err(End::Closed),
                First::B(Ok(client)) => return Ok((client, attempt)),
                First::B(Err(e)) => e,
            };
            tracing::debug!(target: "qmp::reconnect", address = %self.address, attempt, %error, "attempt failed");
            self.lock().last_error = Some(error.clone());
            let out_of_attempts = p.max_attempts.is_some_and(|n| attempt >= n);
            let out_of_time = p
                .max_elapsed
                .is_some_and(|d| since.elapsed().saturating_add(delay) > d);
            if out_of_attempts || out_of_time {
                return Err(End::GaveUp {
                    attempts: attempt,
                    since,
                    error,
                });
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

/// A lost connection: when, and the error that ended it.
struct Lost {
    since: Instant,
    error: Error,
}

/// The background task: keeps a connection up until closed or given up.
async fn manage(inner: Arc<Inner>, first: Option<Client>) {
    let mut next = first;
    let mut lost: Option<Lost> = None;
    let mut close = inner.close.subscribe();
    loop {
        let client = match next.take() {
            Some(client) => client,
            None => match inner.connect_with_backoff(lost.as_ref()).await {
                Ok((client, attempts)) => {
                    inner.install(&client, lost.as_ref(), attempts);
                    client
                }
                Err(end) => return inner.finish(end),
            },
        };
        match race(closing(&mut close), client.closed()).await {
            First::A(()) => {
                client.close().await;
                return inner.finish(End::Closed);
            }
            First::B(error) => {
                let l = Lost {
                    since: Instant::now(),
                    error,
                };
                inner.lose(&l);
                lost = Some(l);
            }
        }
    }
}

/// Resolves once closing was requested.
async fn closing(rx: &mut watch::Receiver<bool>) {
    // The sender lives in `Inner`, which the caller holds: it cannot go away.
    let _ = rx.wait_for(|closing| *closing).await;
}

enum First<A, B> {
    A(A),
    B(B),
}

/// Whichever of `a` and `b` finishes first (`a` on a tie: the stop signal goes there).
async fn race<A: Future, B: Future>(a: A, b: B) -> First<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(First::A(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(First::B(v));
        }
        Poll::Pending
    })
    .await
}

/// Closes the client when the last handle goes.
struct Life(Arc<Inner>);

impl Drop for Life {
    fn drop(&mut self) {
        self.0.close.send_replace(true);
    }
}

/// A QMP client that reconnects by itself; see the [module docs](self). Clone it
/// freely: clones share the connection (and may differ in [timeout](Self::with_timeout)).
#[derive(Clone)]
pub struct ReconnectingClient {
    life: Arc<Life>,
    timeout: Option<Duration>,
}

impl fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("address", &self.inner().address)
            .field("state", &self.connection_state())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ReconnectingClient {
    /// Options for a client of the monitor at the Unix socket `path`, connecting
    /// with `config`; finish with [`Builder::connect`] or [`Builder::start`].
    pub fn unix(config: &Config, path: impl AsRef<Path>) -> Builder {
        Self::builder(config, Address::Unix(path.as_ref().to_owned()))
    }

    /// Options for a client of the monitor at the TCP address `addr` (`HOST:PORT`).
    pub fn tcp(config: &Config, addr: impl Into<String>) -> Builder {
        Self::builder(config, Address::Tcp(addr.into()))
    }

    /// Options for a client of the monitor at `address`, connecting with `config`.
    pub fn builder(config: &Config, address: Address) -> Builder {
        Builder {
            config: config.clone(),
            address,
            policy: Policy {
                initial_delay: DEFAULT_INITIAL_DELAY,
                max_delay: DEFAULT_MAX_DELAY,
                max_attempts: None,
                max_elapsed: None,
                wait_while_reconnecting: true,
                call_timeout: None,
            },
        }
    }

    fn inner(&self) -> &Inner {
        &self.life.0
    }

    /// Where the monitor is.
    pub fn address(&self) -> &Address {
        &self.inner().address
    }

    /// The state now (as [`Client::connection_state`] is one connection's).
    pub fn connection_state(&self) -> ReconnectState {
        self.inner().state()
    }

    /// A watcher of the state, seeing every transition from now on (as
    /// [`Client::watch_connection_state`] is one connection's).
    pub fn watch_connection_state(&self) -> ReconnectStateWatch {
        self.inner().state.watch()
    }

    /// The old name of [`connection_state`](Self::connection_state).
    #[deprecated(note = "renamed to `ReconnectingClient::connection_state`")]
    pub fn state(&self) -> ReconnectState {
        self.connection_state()
    }

    /// The old name of [`watch_connection_state`](Self::watch_connection_state).
    #[deprecated(note = "renamed to `ReconnectingClient::watch_connection_state`")]
    pub fn state_watch(&self) -> ReconnectStateWatch {
        self.watch_connection_state()
    }

    /// The current connection's client, while connected (`None` while reconnecting,
    /// after giving up or closing). It is that one connection's: see the
    /// [module docs](self#calls).
    pub fn current(&self) -> Option<Client> {
        let sh = self.inner().lock();
        sh.client.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// The error of the last failed attempt, or the one that ended the last connection
    /// (`None` while the first connection lasts).
    pub fn last_error(&self) -> Option<Error> {
        self.inner().lock().last_error.clone()
    }

    /// The default timeout of this handle's calls (see [`Builder::call_timeout`]).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// A handle to the same client whose calls use `timeout`, covering the wait for a
    /// connection and the call (`None`: the wait is unbounded and the call uses the
    /// `Config`'s call timeout).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> ReconnectingClient {
        ReconnectingClient {
            timeout,
            ..self.clone()
        }
    }

    /// Stops reconnecting, closes the current connection (its pending calls fail) and
    /// waits until that is done and every subscription has been ended. The state is
    /// then [`ReconnectState::Closed`] (or `GivenUp`, if that came first).
    pub async fn close(&self) {
        self.inner().close.send_replace(true);
        self.closed().await;
    }

    /// Waits until the client has given up or been closed, and returns why (an error
    /// of kind [`Closed`](crate::ErrorKind::Closed); after giving up it names the
    /// attempts and the last attempt's error).
    pub async fn closed(&self) -> Error {
        let mut watch = self.watch_connection_state();
        watch.wait_until(ReconnectState::is_final).await;
        let sh = self.inner().lock();
        match &sh.end {
            Some(why) => Error::closed(why),
            None => Error::closed(&format!(
                "the reconnecting client for QEMU at {} stopped",
                self.inner().address
            )),
        }
    }

    /// Runs a command on the current connection (waiting for one while reconnecting)
    /// and decodes its reply. Never sent twice: see the [module docs](self#calls).
    ///
    /// # Errors
    /// As [`Client::execute`]; a call whose connection was lost before its reply
    /// fails with the connection's error ([`Error::is_closed`],
    /// [`Error::may_have_run`] when it was sent), saying it was not retried; one
    /// made while reconnecting fails with [`Timeout`](crate::ErrorKind::Timeout) when
    /// the handle's timeout ends the wait, or [`Closed`](crate::ErrorKind::Closed) when
    /// the client gives up or is closed first (or at once, without
    /// [`Builder::wait_while_reconnecting`]), unsent in both cases.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        self.run(C::NAME, |client| async move { client.execute(cmd).await })
            .await
    }

    /// Runs a command by name with JSON arguments, as [`Client::execute_raw`], on the
    /// current connection (waiting for one while reconnecting).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        self.run(name, |client| async move {
            client.execute_raw(name, args).await
        })
        .await
    }

    async fn run<T, F, Fut>(&self, command: &str, call: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // A timeout too large to add is no timeout.
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let (connection, client) = self.connection_for(command, deadline).await?;
        let client = match deadline {
            Some(d) => client.with_timeout(Some(d.saturating_duration_since(Instant::now()))),
            None => client,
        };
        match call(client).await {
            Err(e) if e.is_closed() => Err(self.lost_during(connection, &e)),
            // The call was given what was left of the handle's timeout: state the
            // handle's own limit, the one the caller set.
            Err(e) if e.timeout_phase() == Some(crate::Phase::Call) => {
                Err(self.timeout.map_or(e.clone(), |t| e.with_call_limit(t)))
            }
            other => other,
        }
    }

    /// The live connection for a call of `command`, waiting for one if allowed.
    async fn connection_for(
        &self,
        command: &str,
        deadline: Option<Instant>,
    ) -> Result<(u64, Client)> {
        let inner = self.inner();
        let mut watch = inner.state.watch();
        let started = Instant::now();
        loop {
            {
                let sh = inner.lock();
                if let Some(client) = sh.client.as_ref().filter(|c| !c.is_closed()) {
                    return Ok((sh.generation, client.clone()));
                }
                if let Some(end) = &sh.end {
                    return Err(Error::not_sent(
                        ErrorKind::Closed,
                        command,
                        format!("`{command}` was not sent: {end}"),
                        None,
                        None,
                    ));
                }
                if !inner.policy.wait_while_reconnecting {
                    return Err(Error::not_sent(
                        ErrorKind::Closed,
                        command,
                        format!(
                            "`{command}` was not sent: not connected to QEMU at {} ({}); this \
                             client fails calls at once while reconnecting \
                             (`wait_while_reconnecting(false)`): call again later",
                            inner.address,
                            inner.state()
                        ),
                        None,
                        None,
                    ));
                }
            }
            // Any transition (or the end) is a reason to look again.
            let changed = watch.next();
            let outcome = match deadline {
                None => Ok(changed.await),
                Some(d) => {
                    tokio::time::timeout_at(tokio::time::Instant::from_std(d), changed).await
                }
            };
            if outcome.is_err() {
                let last = inner.lock().last_error.clone();
                // The handle's timeout: `deadline` was made from it.
                let limit = self.timeout.unwrap_or_else(|| started.elapsed());
                return Err(Error::not_sent(
                    ErrorKind::Timeout,
                    command,
                    format!(
                        "`{command}` was not sent: no connection to QEMU at {} within {} (the \
                         call's timeout, waiting for it to be re-established)",
                        inner.address,
                        Limit(limit)
                    ),
                    Some(limit),
                    last,
                ));
            }
        }
    }

    /// The error of a call whose connection ended under it (`e`, which names the
    /// command and whether it was sent), saying what this client does about it.
    fn lost_during(&self, connection: u64, e: &Error) -> Error {
        let inner = self.inner();
        let note = if inner.close_requested() {
            format!(
                "the reconnecting client for QEMU at {} was closed during the call",
                inner.address
            )
        } else if e.may_have_run() {
            format!(
                "connection #{connection} to QEMU at {} was lost; the command was NOT \
                 retried: check its effect before calling again (the client is reconnecting \
                 by itself)",
                inner.address
            )
        } else {
            format!(
                "connection #{connection} to QEMU at {} was lost; the client is reconnecting \
                 by itself: call again",
                inner.address
            )
        };
        e.with_note(note)
    }

    /// Subscribes to one event type, on this connection and the later ones; see the
    /// [module docs](self#events) for the gap notice between connections.
    pub fn subscribe<E: Event + Send + 'static>(&self) -> Subscription<E> {
        self.subscription(None, make_one::<E>)
    }

    /// As [`subscribe`](Self::subscribe), with the overflow mode of each
    /// connection's subscription chosen ([`Client::subscribe_with`]).
    pub fn subscribe_with<E: Event + Send + 'static>(&self, overflow: Overflow) -> Subscription<E> {
        self.subscription(Some(overflow), make_one::<E>)
    }

    /// Subscribes to every event, decoded into an [`EventSet`], across connections.
    pub fn subscribe_all<S: EventSet + Send + 'static>(&self) -> Subscription<S> {
        self.subscription(None, make_set::<S>)
    }

    /// As [`subscribe_all`](Self::subscribe_all), with the overflow mode chosen.
    pub fn subscribe_all_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Subscription<S> {
        self.subscription(Some(overflow), make_set::<S>)
    }

    /// Renamed to [`subscribe_all`](Self::subscribe_all) (every event, typed).
    #[deprecated(note = "renamed to subscribe_all")]
    pub fn subscribe_set<S: EventSet + Send + 'static>(&self) -> Subscription<S> {
        self.subscribe_all()
    }

    /// Renamed to [`subscribe_all_with`](Self::subscribe_all_with).
    #[deprecated(note = "renamed to subscribe_all_with")]
    pub fn subscribe_set_with<S: EventSet + Send + 'static>(
        &self,
        overflow: Overflow,
    ) -> Subscription<S> {
        self.subscribe_all_with(overflow)
    }

    /// Subscribes to every event, undecoded, across connections.
    pub fn subscribe_raw(&self) -> Subscription<RawEvent> {
        self.subscription(None, make_raw)
    }

    /// As [`subscribe_raw`](Self::subscribe_raw), with the overflow mode chosen.
    pub fn subscribe_raw_with(&self, overflow: Overflow) -> Subscription<RawEvent> {
        self.subscription(Some(overflow), make_raw)
    }

    fn subscription<T: Send + 'static>(
        &self,
        overflow: Option<Overflow>,
        make: Make<T>,
    ) -> Subscription<T> {
        let slot = Arc::new(Slot {
            make,
            overflow,
            state: Mutex::new(SlotState {
                next: None,
                replaced: false,
                finished: false,
                waker: None,
            }),
        });
        // Under the lock that `install` holds, so the subscription gets either this
        // connection or the next one, never neither.
        let mut sh = self.inner().lock();
        let current = sh.client.as_ref().map(|c| make(c, overflow));
        if sh.end.is_some() {
            slot.lock().finished = true;
        } else {
            sh.slots.retain(|w| w.strong_count() > 0);
            let dyn_slot: Arc<dyn Attach> = slot.clone();
            sh.slots.push(Arc::downgrade(&dyn_slot));
        }
        Subscription {
            seen: sh.generation,
            slot,
            current,
        }
    }
}

/// Subscribes on one connection.
type Make<T> = fn(&Client, Option<Overflow>) -> EventStream<T>;

fn make_one<E: Event + Send + 'static>(c: &Client, o: Option<Overflow>) -> EventStream<E> {
    match o {
        Some(o) => c.subscribe_with::<E>(o),
        None => c.subscribe::<E>(),
    }
}

fn make_set<S: EventSet + Send + 'static>(c: &Client, o: Option<Overflow>) -> EventStream<S> {
    match o {
        Some(o) => c.subscribe_all_with::<S>(o),
        None => c.subscribe_all::<S>(),
    }
}

fn make_raw(c: &Client, o: Option<Overflow>) -> EventStream<RawEvent> {
    match o {
        Some(o) => c.subscribe_raw_with(o),
        None => c.subscribe_raw(),
    }
}

/// What the background task does to a subscription, whatever its item type.
trait Attach: Send + Sync {
    /// Subscribes on the new connection `generation` (`why` for the gap notice).
    fn attach(&self, generation: u64, client: &Client, why: &Arc<str>);
    /// No connection will come any more.
    fn finish(&self);
}

struct Slot<T> {
    make: Make<T>,
    overflow: Option<Overflow>,
    state: Mutex<SlotState<T>>,
}

struct SlotState<T> {
    /// The newest connection's stream, not yet taken by the subscription.
    next: Option<Next<T>>,
    /// Whether `next` replaced an earlier connection's stream the subscription never
    /// took (its events are lost: a gap even before the subscription's first
    /// connection).
    replaced: bool,
    finished: bool,
    waker: Option<Waker>,
}

struct Next<T> {
    generation: u64,
    stream: EventStream<T>,
    why: Arc<str>,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send + 'static> Attach for Slot<T> {
    fn attach(&self, generation: u64, client: &Client, why: &Arc<str>) {
        let stream = (self.make)(client, self.overflow);
        let mut st = self.lock();
        // A newer connection replaces one the subscription never read from: one gap.
        let old = st.next.replace(Next {
            generation,
            stream,
            why: why.clone(),
        });
        st.replaced |= old.is_some();
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    fn finish(&self) {
        let mut st = self.lock();
        // A stream not taken yet stays: the subscription yields what it holds first.
        st.finished = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}

/// A subscription of a [`ReconnectingClient`]: a [`Stream`] of `Result<T, Error>`
/// that follows the connections (see the [module docs](self#events)).
///
/// Items are as those of [`EventStream`], plus one `Err` with [`Error::is_gap`] at
/// each change of connection. It ends when the client has given up or was closed.
pub struct Subscription<T> {
    slot: Arc<Slot<T>>,
    /// The stream of the connection being read.
    current: Option<EventStream<T>>,
    /// The connection `current` belongs to (the last one that was, once it ended;
    /// 0 before the first).
    seen: u64,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("connection", &self.seen)
            .field("attached", &self.current.is_some())
            .finish()
    }
}

impl<T: Send + 'static> Subscription<T> {
    /// The next item, or `None` once the client has given up or was closed.
    pub async fn next(&mut self) -> Option<Result<T>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: Send + 'static> Stream for Subscription<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(current) = &mut this.current {
                match Pin::new(current).poll_next(cx) {
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                    // That connection is over and its events all yielded.
                    Poll::Ready(None) => this.current = None,
                    // Nothing buffered. If a newer connection exists, this one is over
                    // (the next is made only once it has closed): move on.
                    Poll::Pending => {}
                }
            }
            let mut st = this.slot.lock();
            if let Some(next) = st.next.take() {
                let gap = this.seen != 0 || st.replaced;
                st.replaced = false;
                drop(st);
                this.current = Some(next.stream);
                this.seen = next.generation;
                if gap {
                    return Poll::Ready(Some(Err(Error::gap(next.why.to_string()))));
                }
                continue;
            }
            if st.finished {
                // Finished only after the last connection was closed, so a pending
                // stream holds nothing more.
                drop(st);
                this.current = None;
                return Poll::Ready(None);
            }
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}
