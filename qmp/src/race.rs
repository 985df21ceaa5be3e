//! The transport's two-way wait: whichever of two futures finishes first.
//!
//! This is `tokio::select!` with `biased;` and two branches, the only form the client
//! needs. Written out so that the client does not need tokio's `macros` feature,
//! which builds tokio-macros (a proc-macro crate on syn) in every crate that uses the
//! bindings; `qmp::server` and the tests still use `select!`.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Which future of [`race`] finished first, with its output.
pub(crate) enum First<A, B> {
    /// The first argument of [`race`].
    A(A),
    /// The second argument of [`race`].
    B(B),
}

/// Waits for `a` or `b`, whichever finishes first, and drops the other. When both are
/// ready at once `a` wins: callers pass their shutdown signal as `a`, so a connection
/// being torn down never starts another read or write.
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> First<A::Output, B::Output> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_argument_wins_a_tie() {
        assert!(matches!(race(async { 1 }, async { 2 }).await, First::A(1)));
    }

    #[tokio::test]
    async fn the_ready_one_wins() {
        let r = race(std::future::pending::<()>(), async { 2 }).await;
        assert!(matches!(r, First::B(2)));
        let r = race(async { 1 }, std::future::pending::<()>()).await;
        assert!(matches!(r, First::A(1)));
    }

    #[tokio::test]
    async fn a_later_wake_up_is_seen() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let _ = tx.send(7);
        });
        let r = race(std::future::pending::<()>(), rx).await;
        assert!(matches!(r, First::B(Ok(7))));
    }
}
