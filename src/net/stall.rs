//! A connection whose peer takes nothing more fails instead of hanging.
//!
//! When a peer stops reading (its process stopped, its terminal blocked,
//! its machine gone without a word), every write to its socket waits once
//! the kernel's buffers are full. The chat notices (pings go unanswered, a
//! room member's queue stays full) and closes the connection, but libp2p
//! closes a connection gracefully: yamux says goodbye and flushes first,
//! and neither waits with a time limit. To a peer that takes nothing that
//! goodbye never goes out, so the connection (and its buffers) would stay
//! forever and the user would never be told the peer is gone.
//!
//! [`StallGuard`] wraps the raw TCP stream under Noise and yamux: a write,
//! flush or close that makes no progress for [`WRITE_STALL`] fails with
//! `TimedOut`. yamux takes that as the connection's end, the swarm drops
//! it, and the disconnect is reported as any other. Reads are not guarded:
//! a peer with nothing to say is not stuck, and pings already find a dead
//! one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

/// A write that makes no progress for this long ends the connection: the
/// time a room member may take nothing before it is dropped
/// ([`super::SLOW_DROP_AFTER`]).
pub const WRITE_STALL: Duration = super::SLOW_DROP_AFTER;

/// A byte stream whose writes fail after [`StallGuard::new`]'s limit
/// without progress. Once one has failed, every later write that has to
/// wait fails at once: the connection is over. Must be polled inside a
/// tokio runtime (its timer is tokio's).
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// One timer, made at the first wait (not before: only then is the
    /// stream sure to be polled in the runtime) and reset rather than made
    /// anew, since a stream under backpressure waits once per full socket
    /// buffer.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs: set by the first write that could not
    /// proceed, cleared by any progress.
    armed: bool,
}

impl<S> StallGuard<S> {
    /// Guards `inner`: writes fail after `limit` without progress.
    pub fn new(inner: S, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Turns the result of one write-side poll into the guarded result:
    /// progress disarms the timer; waiting arms it (once) and fails when
    /// it runs out.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            self.armed = true;
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer took nothing for {:?}", self.limit),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read_vectored(cx, bufs)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_close(cx);
        self.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// A socket pair whose far end never reads.
    async fn unread_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (near, far) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (near.expect("connect"), far.expect("accept").0)
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        let (near, _far) = unread_pair().await;
        let mut guarded = StallGuard::new(near.compat(), Duration::from_millis(300));
        let block = vec![7u8; 64 * 1024];
        let started = std::time::Instant::now();
        // Bounded: the kernel's buffers hold a few MB at most.
        let mut result = Ok(());
        for _ in 0..4096 {
            result = guarded.write_all(&block).await;
            if result.is_err() {
                break;
            }
        }
        let error = result.expect_err("the write must fail once nothing is taken");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_taking_never_times_out() {
        let (near, far) = unread_pair().await;
        // The writer waits on full buffers again and again, but never
        // near the limit at once (a wide margin: CI machines are slow).
        let limit = Duration::from_secs(5);
        let mut guarded = StallGuard::new(near.compat(), limit);
        let total = 16 * 1024 * 1024;
        let reader = tokio::spawn(async move {
            // Every 20 ms, takes everything there is.
            let (mut taken, mut buf) = (0usize, vec![0u8; 1024 * 1024]);
            for _ in 0..100_000 {
                if far.readable().await.is_err() {
                    break;
                }
                loop {
                    match far.try_read(&mut buf) {
                        Ok(0) => return taken,
                        Ok(n) => taken += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return taken,
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            taken
        });
        let block = vec![7u8; 64 * 1024];
        let mut waited = 0;
        for _ in 0..total / block.len() {
            let started = std::time::Instant::now();
            guarded
                .write_all(&block)
                .await
                .expect("a slow reader is no stall");
            if started.elapsed() >= Duration::from_millis(10) {
                waited += 1;
            }
        }
        guarded.close().await.expect("close");
        assert!(waited > 0, "the writer never had to wait");
        assert_eq!(reader.await.expect("reader"), total);
    }
}
