//! The few async I/O operations the client needs beyond `AsyncRead`/`AsyncWrite`:
//! read into a slice, write all of a slice, flush, and split a stream into halves.
//!
//! tokio has all four behind its `io-util` feature; that feature (and the `bytes`
//! crate it brings) adds about 1.3 s of CPU to a release build of every crate that
//! uses the bindings, for these few lines. `qmp::server` and the tests turn the
//! feature on and use tokio's.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads what is available (at least one byte, or 0 at end of stream) into `buf`.
pub(crate) async fn read<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Writes all of `buf`. A writer that accepts nothing is an error (`WriteZero`), as
/// with `std::io::Write::write_all`.
pub(crate) async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    mut buf: &[u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *w).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Flushes `w`.
pub(crate) async fn flush<W: AsyncWrite + Unpin + ?Sized>(w: &mut W) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *w).poll_flush(cx)).await
}

/// Splits a stream into a read half and a write half usable from two tasks. Each
/// operation locks the stream for the duration of one poll; the stream keeps the
/// reader's and the writer's wakers apart, as every tokio stream does.
pub(crate) fn split<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
) -> (ReadHalf<S>, WriteHalf<S>) {
    let shared = Arc::new(Mutex::new(Box::pin(stream)));
    (ReadHalf(shared.clone()), WriteHalf(shared))
}

type Shared<S> = Arc<Mutex<Pin<Box<S>>>>;

fn lock<S>(s: &Shared<S>) -> MutexGuard<'_, Pin<Box<S>>> {
    // A poll that panicked leaves the stream as it was: go on with it.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The read half of [`split`].
pub(crate) struct ReadHalf<S>(Shared<S>);

/// The write half of [`split`]; shuts the stream's writing side down when asked.
pub(crate) struct WriteHalf<S>(Shared<S>);

impl<S: AsyncRead> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        lock(&self.0).as_mut().poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for WriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.0).as_mut().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.0).as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.0).as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The halves work from two tasks at once over an in-memory pipe, and
    /// `write_all` delivers everything through a pipe smaller than the data.
    #[tokio::test]
    async fn split_halves_carry_data_both_ways() {
        let (a, b) = tokio::io::duplex(7);
        let (mut ar, mut aw) = split(a);
        let (mut br, mut bw) = split(b);
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let expect = data.clone();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 100];
            loop {
                let n = read(&mut br, &mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                write_all(&mut bw, &buf[..n]).await.unwrap();
            }
            flush(&mut bw).await.unwrap();
        });
        let send = tokio::spawn(async move {
            write_all(&mut aw, &data).await.unwrap();
            flush(&mut aw).await.unwrap();
            aw
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < expect.len() {
            let n = read(&mut ar, &mut buf).await.unwrap();
            assert!(n > 0, "stream ended early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, expect);
        let mut aw = send.await.unwrap();
        poll_fn(|cx| Pin::new(&mut aw).poll_shutdown(cx))
            .await
            .unwrap();
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn write_all_reports_a_writer_that_takes_nothing() {
        struct Full;
        impl AsyncWrite for Full {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Ok(0))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let err = write_all(&mut Full, b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }
}
