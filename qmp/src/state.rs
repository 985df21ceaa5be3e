//! Watchable states, seen without missing a transition: a connection's
//! [`ConnectionState`] and a [`crate::reconnect::ReconnectingClient`]'s
//! [`crate::reconnect::ReconnectState`] share one watch type, [`StateWatch`].
//!
//! A plain `tokio::sync::watch` only keeps the latest value: a waiter that is slow to
//! wake can miss a short-lived state (a connection that goes `Disconnecting` → `Idle`
//! in one go). QEMU's Python library hit exactly this and had to rework its run-state
//! events "to guarantee visibility of events to waiters". Here the watched value
//! carries the recent transitions with sequence numbers, so each [`StateWatch`]
//! replays every transition it has not seen yet, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

/// Where one QMP connection is in its life (not the VM's run state, which is
/// `query-status`'s `RunState` in the bindings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not connected (before connecting, and after a disconnect completed).
    Idle,
    /// Connecting, reading the greeting, negotiating capabilities.
    Connecting,
    /// Connected; calls and events flow.
    Running,
    /// The connection is being torn down; pending calls are being failed.
    Disconnecting,
}

/// The old name of [`ConnectionState`].
#[deprecated(
    note = "renamed to `qmp::ConnectionState` (the connection's state; the VM's is `qemu_qapi::types::RunState`)"
)]
pub type RunState = ConnectionState;

/// Watches a connection's [`ConnectionState`]: [`crate::Client::watch_connection_state`],
/// [`crate::Config::watch_connection_state`].
pub type ConnectionStateWatch = StateWatch<ConnectionState>;

/// The old name of [`ConnectionStateWatch`].
#[deprecated(note = "renamed to `qmp::ConnectionStateWatch`")]
pub type RunStateWatch = ConnectionStateWatch;

/// How many transitions a connection's cell keeps for watchers that have not looked
/// yet. One connection makes at most four, so a watcher only loses transitions if it
/// ignores several complete connections; it is then told so (see
/// [`Transition::skipped`]).
const HISTORY: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct Snapshot<S> {
    seq: u64,
    current: S,
    history: Arc<VecDeque<(u64, S)>>,
}

/// One state change seen by a [`StateWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<S = ConnectionState> {
    /// The state entered.
    pub state: S,
    /// How many older transitions this watcher missed because it did not look for a
    /// long time (0 unless more went unobserved than the history keeps: 32 for a
    /// connection, 64 for a reconnecting client).
    pub skipped: u64,
}

/// The writing side of a watched state: keeps the current value and the last
/// `history` transitions.
#[derive(Debug)]
pub(crate) struct StateSender<S> {
    tx: watch::Sender<Snapshot<S>>,
    history: usize,
    /// Whether a state is final (a watcher's `next` then ends once it has seen it).
    is_final: fn(&S) -> bool,
}

impl<S: Copy + PartialEq> StateSender<S> {
    pub(crate) fn new(initial: S, history: usize, is_final: fn(&S) -> bool) -> Self {
        let (tx, _) = watch::channel(Snapshot {
            seq: 0,
            current: initial,
            history: Arc::new(VecDeque::new()),
        });
        StateSender {
            tx,
            history,
            is_final,
        }
    }

    /// Enters `state` (nothing happens when it is the current one).
    pub(crate) fn set(&self, state: S) {
        let history = self.history;
        self.tx.send_if_modified(|s| {
            if s.current == state {
                return false;
            }
            s.seq += 1;
            s.current = state;
            let h = Arc::make_mut(&mut s.history);
            if h.len() == history {
                h.pop_front();
            }
            h.push_back((s.seq, state));
            true
        });
    }

    pub(crate) fn current(&self) -> S {
        self.tx.borrow().current
    }

    pub(crate) fn watch(&self) -> StateWatch<S> {
        let rx = self.tx.subscribe();
        let seen = rx.borrow().seq;
        StateWatch {
            rx,
            seen,
            is_final: self.is_final,
        }
    }
}

/// The writing side of a connection's state, shared by a [`crate::Config`] and the
/// connections it makes.
///
/// Each connection has its own cell, a child of its `Config`'s: setting the child's
/// state sets the parent's too, so a `Config` watcher follows its latest connection
/// while a `Client` watcher follows only its own.
#[derive(Debug, Clone)]
pub(crate) struct StateCell {
    tx: Arc<StateSender<ConnectionState>>,
    parent: Option<Arc<StateSender<ConnectionState>>>,
}

impl StateCell {
    pub(crate) fn new() -> Self {
        StateCell {
            tx: Arc::new(StateSender::new(ConnectionState::Idle, HISTORY, |_| false)),
            parent: None,
        }
    }

    /// A fresh cell for one connection, reporting to this one too.
    pub(crate) fn child(&self) -> StateCell {
        StateCell {
            parent: Some(self.tx.clone()),
            ..StateCell::new()
        }
    }

    pub(crate) fn set(&self, state: ConnectionState) {
        self.tx.set(state);
        if let Some(parent) = &self.parent {
            parent.set(state);
        }
        tracing::debug!(target: "qmp::state", ?state, "connection state");
    }

    pub(crate) fn current(&self) -> ConnectionState {
        self.tx.current()
    }

    pub(crate) fn watch(&self) -> ConnectionStateWatch {
        self.tx.watch()
    }
}

/// Watches a state, seeing every transition in order: a connection's
/// [`ConnectionState`] ([`ConnectionStateWatch`], from
/// [`crate::Client::watch_connection_state`] or
/// [`crate::Config::watch_connection_state`]) or a reconnecting client's
/// [`crate::reconnect::ReconnectState`] (from
/// [`crate::reconnect::ReconnectingClient::watch_connection_state`]).
///
/// It only reports transitions that happen after it was created.
#[derive(Debug)]
pub struct StateWatch<S = ConnectionState> {
    rx: watch::Receiver<Snapshot<S>>,
    seen: u64,
    is_final: fn(&S) -> bool,
}

impl<S: Copy + PartialEq> StateWatch<S> {
    /// The current state.
    pub fn current(&self) -> S {
        self.rx.borrow().current
    }

    /// Waits for the next transition this watcher has not seen. Transitions are never
    /// coalesced: a quick `Disconnecting` → `Idle` is reported as two transitions.
    ///
    /// Returns `None` when the state can no longer change (everything that could
    /// change it was dropped, or a final state was reached) and every transition was
    /// seen.
    pub async fn next(&mut self) -> Option<Transition<S>> {
        loop {
            {
                let snap = self.rx.borrow_and_update();
                if snap.seq > self.seen {
                    let found = snap.history.iter().find(|(seq, _)| *seq > self.seen);
                    let (seq, state) = found.copied().unwrap_or((snap.seq, snap.current));
                    let skipped = seq - self.seen - 1;
                    self.seen = seq;
                    return Some(Transition { state, skipped });
                }
                if (self.is_final)(&snap.current) {
                    return None;
                }
            }
            if self.rx.changed().await.is_err() {
                // Sender gone: report what is left, then end.
                let snap = self.rx.borrow();
                if snap.seq > self.seen {
                    continue;
                }
                return None;
            }
        }
    }

    /// Waits until `state` is entered (returns at once if it is the current one). A
    /// transition into `state` is seen even if it was left again immediately.
    ///
    /// Returns `false` if the state can no longer change and `state` was not reached.
    pub async fn wait_for(&mut self, state: S) -> bool {
        self.wait_until(|s| *s == state).await.is_some()
    }

    /// Waits until a state for which `until` is true is entered, and returns it (at
    /// once if the current state is one). A state entered and left while nobody looked
    /// counts. `None` when the state can no longer change and none was.
    pub async fn wait_until(&mut self, mut until: impl FnMut(&S) -> bool) -> Option<S> {
        let now = self.current();
        if until(&now) {
            return Some(now);
        }
        while let Some(t) = self.next().await {
            if until(&t.state) {
                return Some(t.state);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watcher_sees_every_transition() {
        let cell = StateCell::new();
        let mut w = cell.watch();
        cell.set(ConnectionState::Connecting);
        cell.set(ConnectionState::Running);
        cell.set(ConnectionState::Disconnecting);
        cell.set(ConnectionState::Idle);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(w.next().await.unwrap().state);
        }
        assert_eq!(
            seen,
            [
                ConnectionState::Connecting,
                ConnectionState::Running,
                ConnectionState::Disconnecting,
                ConnectionState::Idle
            ]
        );
        // wait_for a state that was passed through while nobody looked.
        let mut w2 = cell.watch();
        cell.set(ConnectionState::Connecting);
        cell.set(ConnectionState::Idle);
        assert!(w2.wait_for(ConnectionState::Connecting).await);
        drop(cell);
        assert_eq!(w2.next().await.unwrap().state, ConnectionState::Idle);
        assert!(w2.next().await.is_none());
    }

    #[tokio::test]
    async fn overflow_is_reported() {
        let cell = StateCell::new();
        let mut w = cell.watch();
        for _ in 0..40 {
            cell.set(ConnectionState::Connecting);
            cell.set(ConnectionState::Idle);
        }
        let t = w.next().await.unwrap();
        assert_eq!(t.skipped, 80 - HISTORY as u64);
    }
}
