//! A character device as a stream: the host end of a guest agent's serial port when
//! QEMU exposes it as a pseudo-terminal (`-chardev pty,id=qga0`: QEMU prints "char
//! device redirected to /dev/pts/N"), or any other tty or FIFO-like device.
//!
//! The device is opened non-blocking and without becoming the process's controlling
//! terminal, put in raw mode when it is a terminal (no echo, no line editing, no
//! translation of bytes such as 0xFF or `\r`, which the agent's framing needs
//! verbatim: QEMU already makes its pty raw, a device opened otherwise may not be),
//! and read and written through the runtime's readiness (`AsyncFd`), the two halves
//! independent so that a pending read never holds up a write (a `tokio::fs::File`
//! serialises them, and its reads run on the blocking pool).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::sys::termios;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An open character device, split into halves that share the descriptor.
pub(crate) fn open(path: &Path) -> io::Result<(Reader, Writer)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(path)?;
    let fd = OwnedFd::from(file);
    // `tcgetattr` fails (ENOTTY) on a device that is not a terminal: left as it is.
    if let Ok(mut t) = termios::tcgetattr(fd.as_fd()) {
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(fd.as_fd(), termios::SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    }
    // `AsyncFd::new` rather than the newer `unsafe AsyncFd::register`: it exists in
    // every tokio 1.x, and what its deprecation warns of (a descriptor closed or
    // replaced behind the `AsyncFd`'s back) cannot happen to an `OwnedFd` it owns.
    #[allow(deprecated)]
    let fd = Arc::new(AsyncFd::new(fd)?);
    Ok((Reader(fd.clone()), Writer(fd)))
}

/// The reading half of [`open`].
pub(crate) struct Reader(Arc<AsyncFd<OwnedFd>>);

/// The writing half of [`open`].
pub(crate) struct Writer(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The other end of a pty closed: its reads fail with EIO, which is
                // the end of the stream here.
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)
            }) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A device has no half-close; the descriptor closes with both halves.
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chardev::Reader(fd {})", self.0.get_ref().as_raw_fd())
    }
}
