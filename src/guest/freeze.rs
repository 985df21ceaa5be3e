//! [`freeze`]: the guest's file systems frozen for as long as a [`FreezeGuard`] lives.
//!
//! # What this relies on in qemu-ga
//!
//! `guest-fsfreeze-freeze(-list)` in qemu-ga's `qga/commands-posix.c` (QEMU 10.0,
//! unchanged since the freeze loop moved to `qmp_guest_fsfreeze_do_freeze_list`):
//! a failure before any `FIFREEZE` (the freeze hook, the mount list) returns an
//! error with nothing frozen; a failure in the freeze loop calls
//! `qmp_guest_fsfreeze_thaw` itself before returning the error. So an error *reply*
//! means nothing is left frozen by that call, and no thaw is sent (one could thaw a
//! freeze someone else made: qemu-ga refuses `guest-fsfreeze-freeze` while already
//! frozen, with an error reply, and leaves that freeze alone).
//!
//! Without a reply (a timeout, a cancelled call, the connection lost) the guest's
//! state is unknown: the freeze may have happened, or may still be under way. A thaw
//! is sent before the error is returned; qemu-ga runs commands one after another, so
//! it thaws after a freeze still in progress. If the connection is gone the thaw
//! cannot be sent, and the error says the guest may still be frozen.

use qmp::ga::Client;

use super::{spawn_cleanup, Error, Result};
use crate::ga::commands::{GuestFsfreezeFreeze, GuestFsfreezeFreezeList, GuestFsfreezeThaw};

/// The guest's file systems, frozen by [`freeze`]: thaw them with
/// [`thaw`](Self::thaw).
///
/// Dropped without `thaw` (an early return, a panic, a cancelled task), it spawns a
/// task that thaws them, on a clone of the client (so the connection stays open until
/// it is done), and logs a warning (target `qemu_qapi::guest`) that it thawed from
/// drop. That needs the tokio runtime to be running still.
#[derive(Debug)]
#[must_use = "the guest stays frozen until the guard is thawed or dropped"]
pub struct FreezeGuard {
    client: Client,
    frozen: i64,
    /// Whether dropping it must thaw.
    armed: bool,
}

impl FreezeGuard {
    /// How many file systems qemu-ga froze.
    pub fn frozen(&self) -> i64 {
        self.frozen
    }

    /// Thaws the file systems (`guest-fsfreeze-thaw`) and returns how many qemu-ga
    /// thawed.
    ///
    /// # Errors
    /// [`Error::Agent`] when the call fails. After a timeout the thaw's outcome is
    /// unknown, so a task sends it once more (logged as a thaw from drop); after any
    /// other error it does not (qemu-ga answered, or the connection is gone).
    pub async fn thaw(mut self) -> Result<i64> {
        let thawed = self.client.execute(&GuestFsfreezeThaw).await;
        // Cancelled before here, `self` is dropped armed and the drop thaws.
        self.armed = false;
        match thawed {
            Ok(n) => Ok(n),
            Err(e) => {
                if e.is_timeout() {
                    // Unanswered: whether it thawed is unknown, and a second thaw is
                    // harmless (it thaws nothing, or what is still frozen).
                    spawn_thaw(&self.client, "the thaw was not answered in time");
                }
                Err(Error::agent(
                    "thawing the guest's file systems (guest-fsfreeze-thaw)",
                    e,
                ))
            }
        }
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if self.armed {
            spawn_thaw(&self.client, "a freeze guard was dropped without thaw()");
        }
    }
}

/// Thaws from a task (nothing can be awaited in `drop`), with a warning.
fn spawn_thaw(client: &Client, why: &'static str) {
    let client = client.clone();
    spawn_cleanup("thaw the guest's file systems".into(), async move {
        match client.execute(&GuestFsfreezeThaw).await {
            Ok(n) => {
                tracing::warn!(target: "qemu_qapi::guest", thawed = n, "{why}: thawed the guest's file systems from drop")
            }
            Err(e) => {
                tracing::warn!(target: "qemu_qapi::guest", error = %e, "{why}: thawing the guest's file systems from drop failed; they may still be frozen (call guest-fsfreeze-thaw)")
            }
        }
    });
}

/// Freezes every freezable file system of the guest (`guest-fsfreeze-freeze`).
///
/// Never call it on a qemu-ga that runs on this machine (`qemu-ga -m unix-listen`):
/// it freezes this machine's file systems.
///
/// # Errors
/// [`Error::Agent`]: qemu-ga's error reply (it has thawed whatever it froze, see the
/// module docs), or a call without answer, after which a thaw was sent (the error
/// says whether that worked).
pub async fn freeze(client: &Client) -> Result<FreezeGuard> {
    do_freeze(client, None).await
}

/// Freezes the file systems mounted at `mountpoints` (`guest-fsfreeze-freeze-list`).
///
/// # Errors
/// As [`freeze`].
pub async fn freeze_mountpoints<S: AsRef<str>>(
    client: &Client,
    mountpoints: &[S],
) -> Result<FreezeGuard> {
    let list = mountpoints.iter().map(|m| m.as_ref().to_owned()).collect();
    do_freeze(client, Some(list)).await
}

async fn do_freeze(client: &Client, mountpoints: Option<Vec<String>>) -> Result<FreezeGuard> {
    // Armed from the start: if this future is dropped while the freeze is in flight,
    // the guest's state is unknown and the guard's drop thaws.
    let mut guard = FreezeGuard {
        client: client.clone(),
        frozen: 0,
        armed: true,
    };
    let (command, frozen) = match mountpoints {
        None => (
            "guest-fsfreeze-freeze",
            client.execute(&GuestFsfreezeFreeze).await,
        ),
        Some(list) => (
            "guest-fsfreeze-freeze-list",
            client
                .execute(&GuestFsfreezeFreezeList::new().with_mountpoints(list))
                .await,
        ),
    };
    let e = match frozen {
        Ok(n) => {
            guard.frozen = n;
            return Ok(guard);
        }
        Err(e) => e,
    };
    // Whatever happens now is reported here, not by the drop.
    guard.armed = false;
    let what = format!("freezing the guest's file systems ({command})");
    if e.is_qmp_error() {
        // qemu-ga thawed before answering (module docs).
        return Err(Error::agent(what, e));
    }
    let what = match client.execute(&GuestFsfreezeThaw).await {
        Ok(_) => format!("{what}; no answer, so a thaw was sent and succeeded"),
        Err(thaw) => format!(
            "{what}; no answer, and the thaw sent then failed too ({thaw}): the guest's file \
             systems may still be frozen (reconnect and call guest-fsfreeze-status, then \
             guest-fsfreeze-thaw)"
        ),
    };
    Err(Error::agent(what, e))
}
