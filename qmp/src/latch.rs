//! A one-way flag that tasks can wait on: the connection's "shutting down" signal.
//!
//! A tokio `Semaphore` with no permits: nothing can ever acquire one, so `wait` only
//! returns once the semaphore is closed, and closing wakes every waiter at once.
//! (tokio-util's `CancellationToken` does the same; depending on tokio-util for it
//! cost crates using the bindings its compile, and that of `bytes` and
//! `futures-sink`.) Waiting is cancellation-safe: dropping the future forgets the
//! waiter.

use tokio::sync::Semaphore;

pub(crate) struct Latch(Semaphore);

impl Latch {
    pub(crate) const fn new() -> Latch {
        Latch(Semaphore::const_new(0))
    }

    /// Sets the flag and wakes every waiter; later calls do nothing.
    pub(crate) fn set(&self) {
        self.0.close();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.is_closed()
    }

    /// Returns once the flag is set (at once if it already is).
    pub(crate) async fn wait(&self) {
        // Fails with `AcquireError` exactly when closed; a permit never exists.
        let _closed = self.0.acquire().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn set_wakes_every_waiter_and_stays_set() {
        let latch = Arc::new(Latch::new());
        assert!(!latch.is_set());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let l = latch.clone();
                tokio::spawn(async move { l.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "none returns early"
        );
        latch.set();
        latch.set();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .unwrap();
        }
        assert!(latch.is_set());
        latch.wait().await;
    }
}
