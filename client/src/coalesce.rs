//! A socket wrapper that turns the many small flushes of an HTTP/2
//! connection into few `writev` calls.
//!
//! h2 flushes its connection whenever its queue of frames runs dry. A
//! unary gRPC call produces its frames (HEADERS, DATA, trailers or the
//! end-of-stream DATA) from a different task than the one that writes
//! them, so the writer often finds one frame, flushes it, and is woken
//! again for the next: two or three system calls per call. On loopback
//! each of those also runs the receiver's TCP processing, and under load
//! they were about a tenth of a replica's CPU.
//!
//! [`DeferredFlush`] holds written bytes in a buffer and, on the first
//! flush request, yields once before writing them: the flushing task goes
//! to the back of the runtime's queue, the tasks producing the next
//! frames run, and the next flush writes all of it at once. An idle
//! connection loses one trip through the run queue (microseconds), not a
//! timer tick: nothing waits for more data to arrive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write goes out without waiting for a flush.
const HOLD_LIMIT: usize = 256 << 10;
/// Buffer capacity kept between writes.
const KEEP_CAPACITY: usize = 32 << 10;

/// See the module documentation.
#[derive(Debug)]
pub struct DeferredFlush<T> {
    inner: T,
    pending: Vec<u8>,
    /// How much of `pending` the socket has taken.
    written: usize,
    /// Whether this flush has already yielded once.
    yielded: bool,
}

impl<T> DeferredFlush<T> {
    pub fn new(inner: T) -> Self {
        DeferredFlush {
            inner,
            pending: Vec::new(),
            written: 0,
            yielded: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> DeferredFlush<T> {
    /// Writes out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        // A large response grew the buffer; a connection that idles (a
        // node agent's, say) should not keep that memory.
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending.shrink_to(KEEP_CAPACITY);
        }
        Poll::Ready(Ok(()))
    }

    /// Room for more: a full buffer is written out first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.len() >= HOLD_LIMIT {
            std::task::ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeferredFlush<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeferredFlush<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_room(cx))?;
        self.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_room(cx))?;
        let mut n = 0;
        for b in bufs {
            self.pending.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.len() > self.written && !self.yielded {
            // Waking the task from its own poll reschedules it behind the
            // tasks already queued (tokio treats it as a yield).
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        std::task::ready!(self.poll_drain(cx))?;
        self.yielded = false;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for DeferredFlush<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A writer that counts the write calls that reach it.
    #[derive(Default)]
    struct CountingWriter {
        writes: usize,
        bytes: Vec<u8>,
    }

    impl AsyncWrite for CountingWriter {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Flushes `w`, counting how often the flush was polled.
    async fn polls_to_flush<T: AsyncWrite + Unpin>(w: &mut DeferredFlush<T>) -> usize {
        let mut polls = 0;
        std::future::poll_fn(|cx| {
            polls += 1;
            Pin::new(&mut *w).poll_flush(cx)
        })
        .await
        .unwrap();
        polls
    }

    #[tokio::test]
    async fn writes_reach_the_socket_together_at_a_flush_after_one_yield() {
        let mut w = DeferredFlush::new(CountingWriter::default());
        w.write_all(b"headers ").await.unwrap();
        w.write_all(b"data ").await.unwrap();
        assert_eq!(w.get_ref().writes, 0, "nothing is written before a flush");
        // The first flush yields, so it takes two polls.
        assert_eq!(polls_to_flush(&mut w).await, 2);
        w.write_all(b"trailers").await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.get_ref().writes, 2);
        assert_eq!(w.get_ref().bytes, b"headers data trailers");
        // A flush with nothing held does not yield.
        assert_eq!(polls_to_flush(&mut w).await, 1);
    }

    #[tokio::test]
    async fn a_full_buffer_goes_out_without_a_flush_and_shutdown_writes_the_rest() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = DeferredFlush::new(a);
        let chunk = vec![7u8; HOLD_LIMIT];
        w.write_all(&chunk).await.unwrap();
        w.write_all(b"tail").await.unwrap();
        let mut got = vec![0u8; HOLD_LIMIT];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, chunk, "the full buffer was written when more came");
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"tail");
    }
}
