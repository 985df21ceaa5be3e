//! The connection's run state, watchable without missing a transition.
//!
//! A plain `tokio::sync::watch` only keeps the latest value: a waiter that is slow to
//! wake can miss a short-lived state (a connection that goes `Disconnecting` → `Idle`
//! in one go). QEMU's Python library hit exactly this and had to rework its run-state
//! events "to guarantee visibility of events to waiters". Here the watched value
//! carries the recent transitions with sequence numbers, so each
//! [`RunStateWatch`] replays every transition it has not seen yet, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Not connected (before connecting, and after a disconnect completed).
    Idle,
    /// Connecting, reading the greeting, negotiating capabilities.
    Connecting,
    /// Connected; calls and events flow.
    Running,
    /// The connection is being torn down; pending calls are being failed.
    Disconnecting,
}

/// How many transitions are kept for watchers that have not looked yet. One
/// connection makes at most four, so a watcher only loses transitions if it ignores
/// several complete connections; it is then told so (see [`Transition::skipped`]).
const HISTORY: usize = 32;

#[derive(Debug, Clone)]
struct Snapshot {
    seq: u64,
    current: RunState,
    history: Arc<VecDeque<(u64, RunState)>>,
}

/// One state change seen by a [`RunStateWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state entered.
    pub state: RunState,
    /// How many older transitions this watcher missed because it did not look for a
    /// long time (always 0 unless more than 32 transitions went unobserved).
    pub skipped: u64,
}

/// The writing side, shared by a [`crate::Config`] and the connections it makes.
///
/// Each connection has its own cell, a child of its `Config`'s: setting the child's
/// state sets the parent's too, so a `Config` watcher follows its latest connection
/// while a `Client` watcher follows only its own.
#[derive(Debug, Clone)]
pub(crate) struct StateCell {
    tx: Arc<watch::Sender<Snapshot>>,
    parent: Option<Arc<watch::Sender<Snapshot>>>,
}

fn apply(tx: &watch::Sender<Snapshot>, state: RunState) {
    tx.send_modify(|s| {
        if s.current == state {
            return;
        }
        s.seq += 1;
        s.current = state;
        let history = Arc::make_mut(&mut s.history);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back((s.seq, state));
    });
}

impl StateCell {
    pub(crate) fn new() -> Self {
        let (tx, _) = watch::channel(Snapshot {
            seq: 0,
            current: RunState::Idle,
            history: Arc::new(VecDeque::new()),
        });
        StateCell {
            tx: Arc::new(tx),
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

    pub(crate) fn set(&self, state: RunState) {
        apply(&self.tx, state);
        if let Some(parent) = &self.parent {
            apply(parent, state);
        }
        tracing::debug!(target: "qmp::state", ?state, "run state");
    }

    pub(crate) fn current(&self) -> RunState {
        self.tx.borrow().current
    }

    pub(crate) fn watch(&self) -> RunStateWatch {
        let rx = self.tx.subscribe();
        let seen = rx.borrow().seq;
        RunStateWatch { rx, seen }
    }
}

/// Watches a connection's [`RunState`], seeing every transition in order.
///
/// Created by [`crate::Client::run_state`] or [`crate::Config::run_state`]; it only
/// reports transitions that happen after it was created.
#[derive(Debug)]
pub struct RunStateWatch {
    rx: watch::Receiver<Snapshot>,
    seen: u64,
}

impl RunStateWatch {
    /// The current state.
    pub fn current(&self) -> RunState {
        self.rx.borrow().current
    }

    /// Waits for the next transition this watcher has not seen. Transitions are never
    /// coalesced: a quick `Disconnecting` → `Idle` is reported as two transitions.
    ///
    /// Returns `None` when the state can no longer change (everything that could
    /// change it was dropped).
    pub async fn next(&mut self) -> Option<Transition> {
        loop {
            {
                let snap = self.rx.borrow_and_update();
                if snap.seq > self.seen {
                    let mut skipped = 0;
                    let found = snap.history.iter().find(|(seq, _)| *seq > self.seen);
                    let (seq, state) = match found {
                        Some(&(seq, state)) => {
                            skipped = seq - self.seen - 1;
                            (seq, state)
                        }
                        None => (snap.seq, snap.current),
                    };
                    self.seen = seq;
                    return Some(Transition { state, skipped });
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

    /// Waits until the connection enters `state` (returns at once if it is in it now).
    /// A transition into `state` is seen even if it was left again immediately.
    ///
    /// Returns `false` if the state can no longer change and `state` was not reached.
    pub async fn wait_for(&mut self, state: RunState) -> bool {
        if self.current() == state {
            return true;
        }
        while let Some(t) = self.next().await {
            if t.state == state {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watcher_sees_every_transition() {
        let cell = StateCell::new();
        let mut w = cell.watch();
        cell.set(RunState::Connecting);
        cell.set(RunState::Running);
        cell.set(RunState::Disconnecting);
        cell.set(RunState::Idle);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(w.next().await.unwrap().state);
        }
        assert_eq!(
            seen,
            [
                RunState::Connecting,
                RunState::Running,
                RunState::Disconnecting,
                RunState::Idle
            ]
        );
        // wait_for a state that was passed through while nobody looked.
        let mut w2 = cell.watch();
        cell.set(RunState::Connecting);
        cell.set(RunState::Idle);
        assert!(w2.wait_for(RunState::Connecting).await);
        drop(cell);
        assert_eq!(w2.next().await.unwrap().state, RunState::Idle);
        assert!(w2.next().await.is_none());
    }

    #[tokio::test]
    async fn overflow_is_reported() {
        let cell = StateCell::new();
        let mut w = cell.watch();
        for _ in 0..40 {
            cell.set(RunState::Connecting);
            cell.set(RunState::Idle);
        }
        let t = w.next().await.unwrap();
        assert_eq!(t.skipped, 80 - HISTORY as u64);
    }
}
