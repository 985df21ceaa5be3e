//! [`read_file`] and [`write_file`]: a guest file copied in chunks through
//! `guest-file-open`, `guest-file-read`/`guest-file-write` and `guest-file-close`.

use qmp::ga::Client;

use super::{decode, encode, spawn_cleanup, Error, Result};
use crate::ga::commands::{GuestFileClose, GuestFileOpen, GuestFileRead, GuestFileWrite};

/// The default chunk: bytes per `guest-file-read` or `guest-file-write` call.
///
/// Larger than qemu-ga's own default read count (4096) to save round trips; small
/// enough that a chunk's base64 (4/3 of it) is far below the client's message limit
/// ([`qmp::ga::Config::max_message_size`], 16 MiB by default).
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// The largest chunk qemu-ga reads in one call (`QGA_READ_COUNT_MAX`, 48 MiB); its
/// base64 needs a client whose message limit is raised to 64 MiB.
pub const MAX_CHUNK_SIZE: usize = 48 * 1024 * 1024;

/// How to copy files: the chunk size. [`Transfer::new`] for the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    chunk_size: usize,
}

impl Default for Transfer {
    fn default() -> Self {
        Self::new()
    }
}

/// An open guest file handle, closed on every way out: by [`Handle::close`] on the
/// normal and error paths, by a spawned task when dropped open (a cancelled future).
struct Handle {
    client: Client,
    handle: i64,
    path: String,
    open: bool,
}

impl Handle {
    async fn close(&mut self) -> qmp::Result<()> {
        let closed = self.client.execute(&GuestFileClose::new(self.handle)).await;
        // Only now: a close cancelled half-way is tried again from `drop`.
        self.open = false;
        closed.map(drop)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // A cancelled transfer: the guest would keep the handle (and, for a write, the
        // file half written) until qemu-ga exits. The close needs a call, which cannot
        // be awaited here: a task does it on a clone of the client.
        let (client, handle, path) = (self.client.clone(), self.handle, self.path.clone());
        tracing::debug!(target: "qemu_qapi::guest", handle, %path, "transfer dropped; closing the guest file from a task");
        spawn_cleanup(
            format!("close guest file handle {handle} ({path})"),
            async move {
                if let Err(e) = client.execute(&GuestFileClose::new(handle)).await {
                    tracing::warn!(target: "qemu_qapi::guest", handle, %path, error = %e, "closing a dropped transfer's guest file failed");
                }
            },
        );
    }
}

impl Transfer {
    /// Chunks of [`DEFAULT_CHUNK_SIZE`].
    pub fn new() -> Self {
        Transfer {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Bytes per `guest-file-read`/`guest-file-write` call, from 1 to
    /// [`MAX_CHUNK_SIZE`] (a value out of that range is brought into it).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.clamp(1, MAX_CHUNK_SIZE);
        self
    }

    /// Reads the whole guest file at `path`.
    ///
    /// # Errors
    /// [`Error::Agent`] when a call fails (e.g. qemu-ga's error reply to
    /// `guest-file-open` for a file that does not exist), [`Error::BadReply`] for a
    /// chunk that is not base64 or not the size the agent announced. The handle is
    /// closed in every case.
    pub async fn read(&self, client: &Client, path: &str) -> Result<Vec<u8>> {
        let what = format!("reading {path} from the guest");
        let mut handle = open(client, path, "rb", &what).await?;
        let read = async {
            let mut data = Vec::new();
            loop {
                let chunk = client
                    .execute(&GuestFileRead::new(handle.handle).with_count(self.chunk_size as i64))
                    .await
                    .map_err(|e| {
                        Error::agent(
                            format!("{what} (guest-file-read at byte {})", data.len()),
                            e,
                        )
                    })?;
                let bytes = decode(&what, "buf-b64", &chunk.buf_b64)?;
                if usize::try_from(chunk.count).ok() != Some(bytes.len())
                    || bytes.len() > self.chunk_size
                {
                    return Err(Error::BadReply {
                        what: what.clone(),
                        detail: format!(
                            "asked for at most {} bytes at byte {}, got {} bytes announced as {}",
                            self.chunk_size,
                            data.len(),
                            bytes.len(),
                            chunk.count
                        ),
                    });
                }
                data.extend_from_slice(&bytes);
                if chunk.eof {
                    return Ok(data);
                }
            }
        }
        .await;
        finish(&mut handle, read, &what).await
    }

    /// Writes `bytes` to the guest file at `path`, created or truncated. A short
    /// write (the agent wrote less than a chunk) goes on from where it stopped.
    ///
    /// # Errors
    /// [`Error::Agent`] when a call fails, [`Error::BadReply`] when the agent says it
    /// wrote nothing or more than it was given. The handle is closed in every case
    /// (a failed close is an error too: it may have lost buffered data).
    pub async fn write(&self, client: &Client, path: &str, bytes: &[u8]) -> Result<()> {
        let what = format!("writing {path} in the guest");
        let mut handle = open(client, path, "wb", &what).await?;
        let written = async {
            let mut offset = 0;
            while offset < bytes.len() {
                let piece = &bytes[offset..bytes.len().min(offset + self.chunk_size)];
                let reply = client
                    .execute(
                        &GuestFileWrite::new(handle.handle, encode(piece))
                            .with_count(piece.len() as i64),
                    )
                    .await
                    .map_err(|e| {
                        Error::agent(format!("{what} (guest-file-write at byte {offset})"), e)
                    })?;
                match usize::try_from(reply.count) {
                    Ok(n) if n > 0 && n <= piece.len() => offset += n,
                    // Zero would loop for ever; more than given is nonsense.
                    _ => {
                        return Err(Error::BadReply {
                            what: what.clone(),
                            detail: format!(
                                "it says it wrote {} of the {} bytes sent at byte {offset}",
                                reply.count,
                                piece.len()
                            ),
                        })
                    }
                }
            }
            Ok(())
        }
        .await;
        finish(&mut handle, written, &what).await
    }
}

async fn open(client: &Client, path: &str, mode: &str, what: &str) -> Result<Handle> {
    let handle = client
        .execute(&GuestFileOpen::new(path.to_owned()).with_mode(mode.to_owned()))
        .await
        .map_err(|e| Error::agent(format!("{what} (guest-file-open)"), e))?;
    Ok(Handle {
        client: client.clone(),
        handle,
        path: path.to_owned(),
        open: true,
    })
}

/// Closes the handle whatever `result` is; the first error wins.
async fn finish<T>(handle: &mut Handle, result: Result<T>, what: &str) -> Result<T> {
    let closed = handle.close().await;
    match (result, closed) {
        (Err(e), Err(close)) => {
            tracing::debug!(target: "qemu_qapi::guest", error = %close, "closing the guest file after a failure failed too");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(e)) => Err(Error::agent(format!("{what} (guest-file-close)"), e)),
        (Ok(v), Ok(())) => Ok(v),
    }
}

/// Reads the whole guest file at `path` in chunks of [`DEFAULT_CHUNK_SIZE`]
/// ([`Transfer::read`]).
///
/// # Errors
/// As [`Transfer::read`].
pub async fn read_file(client: &Client, path: &str) -> Result<Vec<u8>> {
    Transfer::new().read(client, path).await
}

/// Writes `bytes` to the guest file at `path` (created or truncated) in chunks of
/// [`DEFAULT_CHUNK_SIZE`] ([`Transfer::write`]).
///
/// # Errors
/// As [`Transfer::write`].
pub async fn write_file(client: &Client, path: &str, bytes: &[u8]) -> Result<()> {
    Transfer::new().write(client, path, bytes).await
}
