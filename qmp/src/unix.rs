//! The Unix socket under a client: registered for read readiness only.
//!
//! tokio's `UnixStream` registers its socket for read and write readiness, edge
//! triggered. Each time QEMU reads a request, our send buffer drains, the kernel
//! reports the socket writable, and the runtime wakes up for nothing: one spurious
//! wake-up (an `epoll_wait` more, often a context switch) per call, seen with
//! `strace` as `EPOLLOUT` between every request and its reply. Here the socket is
//! registered for reading only. Writes are non-blocking `write`s (or `sendmsg` with
//! file descriptors), which almost always complete at once: requests are small and the
//! send buffer holds hundreds of KiB. Only a write that would block waits for write
//! readiness, through a registration of a duplicate of the descriptor that lasts
//! until the socket is writable again (registering reports a socket that is already
//! writable at once, so no edge is missed).

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::errno::Errno;
use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags, UnixAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};

/// A connected Unix socket, registered with the runtime for read readiness.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: AsyncFd<UnixStream>,
}

impl Socket {
    /// Takes over `stream` (which must be in non-blocking mode, as tokio's are).
    /// Must run inside a runtime.
    pub(crate) fn new(stream: tokio::net::UnixStream) -> io::Result<Arc<Socket>> {
        Ok(Arc::new(Socket {
            fd: register(stream.into_std()?, Interest::READABLE)?,
        }))
    }

    /// One non-blocking `send`; `WouldBlock` when the send buffer is full. With
    /// `MSG_NOSIGNAL`, as tokio does: a peer that has gone away gives `BrokenPipe`
    /// rather than a `SIGPIPE`, which would kill a program that has not ignored it.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match send(self.fd.get_ref().as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    /// One non-blocking `sendmsg` of `buf` with `fds` attached (`SCM_RIGHTS`,
    /// `MSG_NOSIGNAL`); `WouldBlock` when the send buffer is full. Returns how much of
    /// `buf` went out: the descriptors travel with the first byte.
    pub(crate) fn try_send_with_fds(&self, buf: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
        // Raw descriptors of `fds` and of the socket, which outlive the call.
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        loop {
            let r = sendmsg::<UnixAddr>(
                self.fd.get_ref().as_raw_fd(),
                &[io::IoSlice::new(buf)],
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            );
            match r {
                Err(Errno::EINTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    /// Registers a duplicate of the descriptor for write readiness (see the module
    /// documentation); ready as soon as the socket is writable.
    fn write_waiter(&self) -> io::Result<AsyncFd<UnixStream>> {
        register(self.fd.get_ref().try_clone()?, Interest::WRITABLE)
    }

    /// Waits until the socket is writable (after a write returned `WouldBlock`).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        let waiter = self.write_waiter()?;
        let _ready = waiter.writable().await?;
        Ok(())
    }
}

/// Registers `stream` with the runtime for `interest`.
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: the `AsyncFd` owns `stream`, which owns its descriptor: the descriptor
    // stays open, and is the same one, until the `AsyncFd` is dropped (nothing here
    // closes it, replaces it or takes the stream out).
    unsafe { AsyncFd::register_with_interest(stream, interest) }.map_err(io::Error::from)
}

/// The reading side.
pub(crate) struct Reader(pub(crate) Arc<Socket>);

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let want = unfilled.len();
            match guard.try_io(|fd| fd.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    // A short read emptied the socket's buffer (a stream socket
                    // returns what it has): forget the readiness now rather than
                    // learn it from one more `read` failing with `WouldBlock`. New
                    // data raises a new edge. (tokio does the same.)
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // `WouldBlock`: readiness cleared; wait for the next edge.
                Err(_would_block) => continue,
            }
        }
    }
}

/// The writing side, shared by the writer task and callers writing directly. When the
/// last one goes, the socket's write side is shut down, so the peer sees the end of
/// the stream while the reader still receives what it sends.
#[derive(Debug)]
pub(crate) struct Writer {
    socket: Arc<Socket>,
}

impl Writer {
    pub(crate) fn new(socket: Arc<Socket>) -> Writer {
        Writer { socket }
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.socket.fd.get_ref().shutdown(Shutdown::Write);
    }
}

/// What [`poll_write`] keeps between polls: the registration waiting for write
/// readiness, while a write would block.
#[derive(Default)]
pub(crate) struct WriteWait(Option<AsyncFd<UnixStream>>);

/// `AsyncWrite::poll_write` for a [`Writer`].
pub(crate) fn poll_write(
    w: &Writer,
    wait: &mut WriteWait,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    loop {
        match w.socket.try_write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => {
                wait.0 = None;
                return Poll::Ready(r);
            }
        }
        if wait.0.is_none() {
            wait.0 = Some(w.socket.write_waiter()?);
        }
        let waiter = wait.0.as_ref().expect("registered above");
        let mut guard = ready!(waiter.poll_write_ready(cx))?;
        // Writable again (or it was when registered): retry; a `WouldBlock` then
        // means the edge has passed, so wait for the next one.
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_what_the_peer_writes_and_ends_with_it() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let sock = Socket::new(a).unwrap();
        let mut reader = Reader(sock.clone());
        let writer = Writer::new(Socket::new(b).unwrap());
        writer.socket().try_write(b"hello\n").unwrap();
        let mut buf = [0u8; 16];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        drop(writer);
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "end of stream");
    }

    #[tokio::test]
    async fn a_write_that_would_block_waits_for_the_peer_to_read() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let writer = Writer::new(Socket::new(a).unwrap());
        // Fill the send buffer.
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0usize;
        loop {
            match writer.socket().try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let peer = tokio::spawn(async move {
            let mut b = b;
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = b.read(&mut buf).await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        });
        let mut wait = WriteWait::default();
        let mut rest: &[u8] = b"last\n";
        while !rest.is_empty() {
            let n = std::future::poll_fn(|cx| poll_write(&writer, &mut wait, cx, rest))
                .await
                .unwrap();
            rest = &rest[n..];
        }
        drop(writer);
        assert_eq!(peer.await.unwrap(), written + 5);
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let writer = Writer::new(Socket::new(a).unwrap());
        drop(b);
        // Without MSG_NOSIGNAL this would raise SIGPIPE (the test harness, like any
        // Rust program, ignores it, so check the error kind instead).
        let e = writer.socket().try_write(b"x\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
