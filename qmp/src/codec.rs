//! Newline-delimited JSON framing over any `AsyncRead` / `AsyncWrite`, with a read limit.
//!
//! QMP peers send one JSON object per line (QEMU ends its lines with `\r\n`). The
//! [`LineReader`] hands out lines as borrowed `&str` slices of its buffer, so reading a
//! message costs no allocation; the buffer grows only as far as the longest line seen
//! and never beyond the configured maximum ([`DEFAULT_MAX_LINE`] by default), so a peer
//! cannot make it use unbounded memory. The [`LineWriter`] collects any number of
//! messages in one buffer and writes them with one `write_all`, which is how the client
//! coalesces queued requests.
//!
//! Both are used by the client and by the test server.

use tokio::io::{AsyncRead, AsyncWrite};

/// The default maximum line length: 16 MiB.
///
/// QEMU 10.0's largest reply, `query-qmp-schema` on a full system emulator, is about
/// 300 KB; 16 MiB leaves room for much larger schemas and `query-*` replies of big
/// machines, while still bounding what a broken peer can make us buffer. The read
/// buffer only grows this far if a line actually is this long.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// The free space offered to the first `read` call (an idle connection holds no more
/// than this); it doubles each time a read fills it, up to [`MAX_READ`].
const MIN_READ: usize = 512;
/// The most free space a `read` call is offered (unless a long line needs more).
const MAX_READ: usize = 64 * 1024;
/// When the buffer is empty and bigger than this (a big message went through), it is
/// given back and starts small again.
const SHRINK_ABOVE: usize = 4 * MAX_READ;

/// A framing error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A line exceeded the maximum length. The reader has dropped what it buffered of
    /// it; a further [`LineReader::next_line`] call resumes after that line.
    #[error("line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The configured maximum.
        limit: usize,
    },
    /// A line was not valid UTF-8 (so not JSON). The line has been consumed.
    #[error("line is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// The stream ended in the middle of a line.
    #[error("stream ended inside a line ({partial} bytes without a newline)")]
    TruncatedLine {
        /// How many bytes of the incomplete line were received.
        partial: usize,
    },
}

/// Reads newline-terminated lines from an `AsyncRead`.
///
/// Lines are returned without their `\n` or `\r\n`; lines that are empty or only
/// whitespace are skipped.
///
/// [`next_line`](Self::next_line) is cancellation-safe: if its future is dropped,
/// no data is lost, and the next call picks up where it stopped.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    /// Initialised storage; `buf[start..end]` holds unread data.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `buf[start..scanned]` is known to contain no newline.
    scanned: usize,
    max_line: usize,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    /// What [`line_ready`](LineReader::line_ready) found ahead of `next_line`: a
    /// line's position in `buf`, or the error it met.
    ready: Option<Result<(usize, usize), CodecError>>,
    /// Free space to offer the next `read` (grows while reads fill it).
    read_size: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the [`DEFAULT_MAX_LINE`] limit.
    pub fn new(inner: R) -> Self {
        Self::with_max_line(inner, DEFAULT_MAX_LINE)
    }

    /// A reader refusing lines longer than `max_line` bytes (terminator excluded).
    pub fn with_max_line(inner: R, max_line: usize) -> Self {
        LineReader {
            inner,
            // Allocated on the first read, and grown on demand.
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            max_line: max_line.max(1),
            discarding: false,
            ready: None,
            read_size: MIN_READ,
        }
    }

    /// The configured maximum line length.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Gives back the underlying reader (buffered, unread bytes are lost).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes received but not yet returned as lines.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads the next non-blank line. `Ok(None)` at a clean end of stream.
    ///
    /// # Errors
    /// [`CodecError::LineTooLong`], [`CodecError::InvalidUtf8`] (both recoverable:
    /// call again to go on with the next line), [`CodecError::TruncatedLine`] when the
    /// stream ends mid-line, and I/O errors.
    pub async fn next_line(&mut self) -> Result<Option<&str>, CodecError> {
        let (a, b) = loop {
            let found = match self.ready.take() {
                Some(r) => Some(r),
                None => self.scan(),
            };
            match found {
                Some(Ok(line)) => break line,
                Some(Err(e)) => return Err(e),
                None => {}
            }
            self.make_room();
            let space = self.buf.len() - self.end;
            let n = crate::io::read(&mut self.inner, &mut self.buf[self.end..]).await?;
            if n == 0 {
                let partial = self.end - self.start;
                let blank = self.buf[self.start..self.end]
                    .iter()
                    .all(u8::is_ascii_whitespace);
                self.start = self.end;
                self.scanned = self.end;
                if self.discarding || blank {
                    self.discarding = false;
                    return Ok(None);
                }
                return Err(CodecError::TruncatedLine { partial });
            }
            if n == space {
                // The peer has more than we offered: offer more next time.
                self.read_size = (self.read_size * 2).min(MAX_READ);
            }
            self.end += n;
        };
        Ok(Some(std::str::from_utf8(&self.buf[a..b])?))
    }

    /// Discards everything up to and including the next `delimiter` byte, reading
    /// from the peer as needed. `Ok(true)` once it is consumed, `Ok(false)` when the
    /// stream ends first.
    ///
    /// The guest agent's resynchronisation (`guest-sync-delimited`) needs it: the
    /// agent sends a 0xFF byte, which never occurs in UTF-8 JSON, right before the
    /// reply, so whatever precedes it (stale replies, half a line) can be dropped
    /// without being parsed. A line [`line_ready`](Self::line_ready) found ahead is
    /// searched too. Cancellation-safe, like `next_line`.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn skip_through(&mut self, delimiter: u8) -> std::io::Result<bool> {
        if let Some(Ok((line_start, _))) = self.ready.take() {
            // Not handed out yet: it may hold the delimiter.
            self.start = line_start;
        }
        // Whatever line was being skipped ends here: the search defines a new start.
        self.discarding = false;
        loop {
            if let Some(pos) = memchr::memchr(delimiter, &self.buf[self.start..self.end]) {
                self.start += pos + 1;
                self.scanned = self.start;
                return Ok(true);
            }
            self.start = self.end;
            self.scanned = self.end;
            self.make_room();
            let n = crate::io::read(&mut self.inner, &mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
    }

    /// Waits until [`next_line`](Self::next_line) would return at once (a complete
    /// line or an error is buffered, or the stream has ended), reading from the peer
    /// as `next_line` does but handing nothing out. Cancellation-safe, like
    /// `next_line`: what a cancelled call read stays buffered.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn wait_line(&mut self) -> std::io::Result<()> {
        while !self.line_ready() {
            self.make_room();
            let space = self.buf.len() - self.end;
            let n = crate::io::read(&mut self.inner, &mut self.buf[self.end..]).await?;
            if n == 0 {
                // The end: `next_line` reads it again (it stays at the end) and says
                // whether a line was cut short.
                return Ok(());
            }
            if n == space {
                self.read_size = (self.read_size * 2).min(MAX_READ);
            }
            self.end += n;
        }
        Ok(())
    }

    /// Whether [`next_line`](Self::next_line) would return at once (a complete line,
    /// or an error, is already buffered) rather than wait for the peer.
    pub fn line_ready(&mut self) -> bool {
        if self.ready.is_none() {
            self.ready = self.scan();
        }
        self.ready.is_some()
    }

    /// Finds the next complete non-blank line in what is buffered, without reading.
    fn scan(&mut self) -> Option<Result<(usize, usize), CodecError>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + pos;
                let line_start = self.start;
                self.start = nl + 1;
                self.scanned = self.start;
                if self.discarding {
                    self.discarding = false;
                    continue;
                }
                let mut line_end = nl;
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                if line_end - line_start > self.max_line {
                    return Some(Err(CodecError::LineTooLong {
                        limit: self.max_line,
                    }));
                }
                if self.buf[line_start..line_end]
                    .iter()
                    .all(u8::is_ascii_whitespace)
                {
                    continue;
                }
                return Some(Ok((line_start, line_end)));
            }
            self.scanned = self.end;
            if self.discarding {
                // Keep nothing of a line we are skipping.
                self.start = self.end;
            } else if self.end - self.start > self.max_line + 1 {
                // +1: a line of exactly max_line bytes may still be waiting for "\n"
                // after its "\r".
                self.discarding = true;
                self.start = self.end;
                self.scanned = self.end;
                self.make_room();
                return Some(Err(CodecError::LineTooLong {
                    limit: self.max_line,
                }));
            }
            return None;
        }
    }

    /// Ensures at least `read_size` bytes of free space after `end`, compacting and
    /// growing (or shrinking back after a big line) as needed.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > SHRINK_ABOVE {
                // A big message has gone through: give the memory back.
                self.buf = Vec::new();
                self.read_size = MIN_READ;
            }
        }
        let want = self.read_size;
        if self.buf.len() - self.end >= want {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let limit = self.max_line.saturating_add(2 + want);
            let wanted = (self.buf.len() * 2).max(self.end + want);
            self.buf.resize(wanted.min(limit).max(self.end + want), 0);
        }
    }
}

/// How [`LineWriter`] ends each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\n` (what clients send).
    #[default]
    Lf,
    /// `\r\n` (what QEMU sends).
    CrLf,
}

/// Buffers whole lines and writes them to an `AsyncWrite` in one go.
#[derive(Debug)]
pub struct LineWriter<W> {
    inner: W,
    buf: Vec<u8>,
    ending: LineEnding,
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    /// A writer ending lines with `\n`.
    pub fn new(inner: W) -> Self {
        Self::with_line_ending(inner, LineEnding::Lf)
    }

    /// A writer ending lines as given.
    pub fn with_line_ending(inner: W, ending: LineEnding) -> Self {
        LineWriter {
            inner,
            // Allocated on the first message.
            buf: Vec::new(),
            ending,
        }
    }

    /// Appends one message: `encode` writes the JSON (without terminator) into the
    /// buffer, then the line ending is added. If `encode` fails, the buffer is left as
    /// it was.
    ///
    /// # Errors
    /// Whatever `encode` returns.
    pub fn push_with<E>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let before = self.buf.len();
        if let Err(e) = encode(&mut self.buf) {
            self.buf.truncate(before);
            return Err(e);
        }
        self.end_line();
        Ok(())
    }

    /// Appends one already-encoded message (which must not contain a newline).
    pub fn push_bytes(&mut self, message: &[u8]) {
        self.buf.extend_from_slice(message);
        self.end_line();
    }

    fn end_line(&mut self) {
        match self.ending {
            LineEnding::Lf => self.buf.push(b'\n'),
            LineEnding::CrLf => self.buf.extend_from_slice(b"\r\n"),
        }
    }

    /// Bytes buffered and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything buffered with one `write_all`, then flushes.
    ///
    /// Not cancellation-safe: if the future is dropped, part of the buffer may have
    /// been written (drop the connection then).
    ///
    /// # Errors
    /// I/O errors.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            crate::io::write_all(&mut self.inner, &self.buf).await?;
            self.buf.clear();
            if self.buf.capacity() > 1024 * 1024 {
                self.buf.shrink_to(4096);
            }
        }
        crate::io::flush(&mut self.inner).await
    }

    /// The underlying writer (for writes that bypass the buffer, e.g. with fds).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Gives back the underlying writer (unwritten bytes are lost).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Result<String, String>> {
        let (mut tx, rx) = tokio::io::duplex(64);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let feeder = tokio::spawn(async move {
            for c in chunks {
                tx.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut r = LineReader::with_max_line(rx, max);
        let mut out = Vec::new();
        loop {
            match r.next_line().await {
                Ok(Some(l)) => out.push(Ok(l.to_owned())),
                Ok(None) => break,
                Err(e @ CodecError::TruncatedLine { .. }) => {
                    out.push(Err(e.to_string()));
                    break;
                }
                Err(e) => out.push(Err(e.to_string())),
            }
        }
        feeder.await.unwrap();
        out
    }

    #[tokio::test]
    async fn splits_and_joins_lines() {
        let got = lines_of(&[b"{\"a\":", b"1}\r\n{\"b\"", b":2}\n\n  \r\n{}\n"], 100).await;
        assert_eq!(
            got,
            vec![
                Ok("{\"a\":1}".to_owned()),
                Ok("{\"b\":2}".to_owned()),
                Ok("{}".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn byte_by_byte() {
        let text = b"{\"x\":\"y\"}\r\n{\"z\":[1,2,3]}\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let got = lines_of(&chunks, 100).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Ok("{\"z\":[1,2,3]}".to_owned()));
    }

    #[tokio::test]
    async fn oversized_line_is_an_error_and_skipped() {
        let big = vec![b'x'; 10_000];
        let got = lines_of(&[b"{}\n", &big, b"\n{\"after\":1}\n"], 1000).await;
        assert_eq!(got[0], Ok("{}".to_owned()));
        assert_eq!(
            got[1],
            Err("line longer than the limit of 1000 bytes".to_owned())
        );
        assert_eq!(got[2], Ok("{\"after\":1}".to_owned()));
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn oversized_line_in_one_chunk() {
        let mut data = vec![b'y'; 50];
        data.extend_from_slice(b"\n{}\n");
        let got = lines_of(&[&data], 10).await;
        assert_eq!(
            got,
            vec![
                Err("line longer than the limit of 10 bytes".to_owned()),
                Ok("{}".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn line_of_exactly_the_limit_passes() {
        let mut data = vec![b'z'; 10];
        data.extend_from_slice(b"\r\n");
        let got = lines_of(&[&data[..5], &data[5..]], 10).await;
        assert_eq!(got, vec![Ok("z".repeat(10))]);
    }

    #[tokio::test]
    async fn memory_stays_bounded_on_endless_line() {
        let (mut tx, rx) = tokio::io::duplex(4096);
        let feeder = tokio::spawn(async move {
            let chunk = vec![b'a'; 4096];
            for _ in 0..256 {
                if tx.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut r = LineReader::with_max_line(rx, 20_000);
        let first = r.next_line().await;
        assert!(matches!(
            first,
            Err(CodecError::LineTooLong { limit: 20_000 })
        ));
        assert!(r.buf.len() <= 20_000 + 2 + 2 * MAX_READ);
        // The rest of the endless line is discarded, then the stream ends.
        assert!(matches!(r.next_line().await, Ok(None)));
        assert!(r.buf.len() <= 20_000 + 2 + 2 * MAX_READ);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn truncated_and_invalid_utf8() {
        let got = lines_of(&[b"{}\n{\"cut\":"], 100).await;
        assert_eq!(got[0], Ok("{}".to_owned()));
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .contains("stream ended inside a line"));
        let got = lines_of(&[b"\xff\xfe\n{}\n"], 100).await;
        assert!(got[0].as_ref().unwrap_err().contains("UTF-8"));
        assert_eq!(got[1], Ok("{}".to_owned()));
    }

    #[tokio::test]
    async fn big_line_then_buffer_shrinks() {
        let big = format!("{{\"k\":\"{}\"}}\n{{}}\n", "v".repeat(300_000));
        let got = lines_of(&[big.as_bytes()], DEFAULT_MAX_LINE).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().len(), 300_008);
    }

    /// An idle connection holds a small buffer; a flood grows it (bigger reads, up to
    /// MAX_READ); after a big line it is given back.
    #[tokio::test]
    async fn buffer_starts_small_grows_on_demand_and_shrinks_after_a_big_line() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut r = LineReader::new(rx);
        assert_eq!(
            r.buf.capacity(),
            0,
            "nothing allocated before the first read"
        );
        tx.write_all(b"{\"QMP\": {}}\r\n").await.unwrap();
        assert_eq!(r.next_line().await.unwrap(), Some("{\"QMP\": {}}"));
        assert!(r.buf.len() <= MIN_READ, "idle buffer {}", r.buf.len());
        let flood = "{\"event\": \"X\"}\r\n".repeat(20_000);
        tx.write_all(flood.as_bytes()).await.unwrap();
        for _ in 0..20_000 {
            assert_eq!(r.next_line().await.unwrap(), Some("{\"event\": \"X\"}"));
        }
        assert!(
            r.read_size > MIN_READ,
            "reads did not grow: {}",
            r.read_size
        );
        assert!(r.buf.len() <= 2 * MAX_READ, "flood buffer {}", r.buf.len());
        let big = format!("{{\"k\": \"{}\"}}\r\n", "v".repeat(600_000));
        tx.write_all(big.as_bytes()).await.unwrap();
        assert_eq!(r.next_line().await.unwrap().unwrap().len(), 600_009);
        assert!(r.buf.len() > SHRINK_ABOVE);
        tx.write_all(b"{}\r\n").await.unwrap();
        assert_eq!(r.next_line().await.unwrap(), Some("{}"));
        assert!(r.buf.len() <= MIN_READ, "not shrunk: {}", r.buf.len());
    }

    #[tokio::test]
    async fn skip_through_drops_everything_up_to_the_delimiter() {
        let data: &[u8] = b"{\"return\": 1}\n{\"half\xff{\"return\": 2}\n{\"return\": 3}\n";
        let mut r = LineReader::new(data);
        assert!(r.skip_through(0xFF).await.unwrap());
        assert_eq!(r.next_line().await.unwrap(), Some("{\"return\": 2}"));
        assert_eq!(r.next_line().await.unwrap(), Some("{\"return\": 3}"));
        assert!(!r.skip_through(0xFF).await.unwrap());
        // Byte by byte, and a delimiter inside a line found ahead by `line_ready`.
        let data: &[u8] = b"junk\xff{\"return\": 4}\n";
        let mut r = LineReader::new(tokio_test_reader(data));
        assert!(r.skip_through(0xFF).await.unwrap());
        assert_eq!(r.next_line().await.unwrap(), Some("{\"return\": 4}"));
        let mut r = LineReader::new(&b"x\na\xffb\n{}\n"[..]);
        assert_eq!(r.next_line().await.unwrap(), Some("x"));
        assert!(r.line_ready());
        assert!(r.skip_through(0xFF).await.unwrap());
        assert_eq!(r.next_line().await.unwrap(), Some("b"));
    }

    /// `wait_line` returns once a line is complete, hands nothing out, survives
    /// being cancelled mid-line (what it read stays), and returns at the end of the
    /// stream, where `next_line` then tells a clean end from a cut line.
    #[tokio::test]
    async fn wait_line_waits_for_a_whole_line_and_keeps_what_it_read() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(rx);
        tx.write_all(b"{\"a\":").await.unwrap();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), r.wait_line()).await;
        assert!(
            waited.is_err(),
            "half a line: still waiting (then cancelled)"
        );
        tx.write_all(b"1}\n{\"b\":2}\n").await.unwrap();
        r.wait_line().await.unwrap();
        assert!(r.line_ready());
        assert_eq!(r.next_line().await.unwrap(), Some("{\"a\":1}"));
        r.wait_line().await.unwrap();
        assert_eq!(r.next_line().await.unwrap(), Some("{\"b\":2}"));
        tx.write_all(b"{\"cut").await.unwrap();
        drop(tx);
        r.wait_line().await.unwrap();
        assert!(matches!(
            r.next_line().await,
            Err(CodecError::TruncatedLine { partial: 5 })
        ));
        let mut r = LineReader::new(&b""[..]);
        r.wait_line().await.unwrap();
        assert_eq!(r.next_line().await.unwrap(), None);
    }

    /// A reader that hands out one byte per read.
    fn tokio_test_reader(data: &'static [u8]) -> impl AsyncRead + Unpin {
        let (mut w, r) = tokio::io::duplex(1);
        tokio::spawn(async move {
            for b in data {
                let _ = w.write_all(std::slice::from_ref(b)).await;
            }
        });
        r
    }

    #[tokio::test]
    async fn writer_coalesces() {
        let (tx, rx) = tokio::io::duplex(1 << 16);
        let mut w = LineWriter::with_line_ending(tx, LineEnding::CrLf);
        w.push_bytes(b"{}");
        w.push_with(|b| {
            b.extend_from_slice(b"{\"a\":1}");
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(w
            .push_with(|b| {
                b.extend_from_slice(b"partial");
                Err(())
            })
            .is_err());
        assert_eq!(w.pending(), 13);
        w.flush().await.unwrap();
        drop(w);
        let mut r = LineReader::new(rx);
        assert_eq!(r.next_line().await.unwrap(), Some("{}"));
        assert_eq!(r.next_line().await.unwrap(), Some("{\"a\":1}"));
        assert_eq!(r.next_line().await.unwrap(), None);
    }
}
