//! Runs the requests of one HTTP/2 connection inside the connection's own task.
//!
//! hyper hands every HTTP/2 stream to an executor. Spawning each one as a tokio task makes a
//! request cross threads twice (the connection task wakes an idle worker to run the handler, and
//! the handler wakes the connection task to send the response); under a steady stream of small
//! requests (5,000 kubelets renewing their Leases) these wake-ups cost more than the requests.
//! [`ConnExecutor`] instead queues the stream futures and [`Driver`] polls them together with the
//! connection, in one task: a request that waits (on the store, a watch) still waits without
//! blocking the others, and different connections still run on different workers.
//!
//! [`CoalescedIo`] makes the answers of one round leave together: h2 flushes its socket after
//! every response body bigger than 256 bytes (it sends such a body without copying it, and must
//! write it out before it can queue the next frame), so the Lease renewals answered by one store
//! commit cost one TLS record and one `writev` each. Inside the driver's polls of the connection
//! those flushes only mark the output due, and the driver writes it all out after each poll.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker, ready};

use bytes::{Buf, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Rounds of polling in one task poll before yielding to the runtime.
const MAX_ROUNDS: usize = 16;

/// What the connection task must poll, set by wakers instead of waking the task when the task
/// is already being polled: tokio reschedules a task woken during its own poll as a yield, and
/// a yield wakes an idle worker to steal it (a futex wake and two context switches), which is
/// what every answered request (the stream wakes the connection to send its response) did.
struct Shared {
    queue: Mutex<Vec<StreamFuture>>,
    task: AtomicWaker,
    polling: AtomicBool,
    conn_due: AtomicBool,
    streams_due: AtomicBool,
}

impl Shared {
    fn mark(&self, flag: &AtomicBool) {
        flag.store(true, SeqCst);
        self.wake_unless_polling();
    }

    /// Wakes the task, unless it is being polled (then it sees the work before it sleeps).
    fn wake_unless_polling(&self) {
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }

    fn anything_due(&self) -> bool {
        self.conn_due.load(SeqCst) || self.streams_due.load(SeqCst) || !self.queue.lock().is_empty()
    }
}

/// Wakes the connection (`streams: false`) or the streams of a [`Driver`].
struct FlagWaker {
    shared: Arc<Shared>,
    streams: bool,
}

impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let s = &self.shared;
        s.mark(if self.streams {
            &s.streams_due
        } else {
            &s.conn_due
        });
    }
}

/// A hyper executor that hands stream futures to the [`Driver`] of their connection.
#[derive(Clone)]
pub struct ConnExecutor {
    shared: Arc<Shared>,
}

impl<F> hyper::rt::Executor<F> for ConnExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.shared.queue.lock().push(Box::pin(fut));
        self.shared.wake_unless_polling();
    }
}

/// Polls a connection together with the stream futures its [`ConnExecutor`] was given.
pub struct Driver {
    shared: Arc<Shared>,
    streams: FuturesUnordered<StreamFuture>,
    conn_waker: Waker,
    streams_waker: Waker,
    output: Option<Arc<dyn Output>>,
}

impl Default for Driver {
    fn default() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            task: AtomicWaker::new(),
            polling: AtomicBool::new(false),
            conn_due: AtomicBool::new(true),
            streams_due: AtomicBool::new(false),
        });
        Driver {
            conn_waker: Waker::from(Arc::new(FlagWaker {
                shared: shared.clone(),
                streams: false,
            })),
            streams_waker: Waker::from(Arc::new(FlagWaker {
                shared: shared.clone(),
                streams: true,
            })),
            shared,
            streams: FuturesUnordered::new(),
            output: None,
        }
    }
}

impl Driver {
    /// The executor to build the connection with.
    pub fn executor(&self) -> ConnExecutor {
        ConnExecutor {
            shared: self.shared.clone(),
        }
    }

    /// Wraps the connection's IO so that its writes during one poll of the connection leave
    /// together, after that poll (see [`CoalescedIo`]).
    pub fn coalesce<T>(&mut self, io: T) -> CoalescedIo<T>
    where
        T: AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(Mutex::new(IoState {
            io,
            out: BytesMut::new(),
            defer: false,
            flush_due: false,
            error: None,
        }));
        self.output = Some(state.clone());
        CoalescedIo { state }
    }

    /// Polls `conn` and the streams until `conn` completes. Streams still running are kept for
    /// the next call (after a graceful shutdown was started, say); dropping the driver drops
    /// them.
    pub async fn run<C>(&mut self, mut conn: C) -> C::Output
    where
        C: Future + Unpin,
    {
        // The next call starts by polling the connection, whatever woke the task before.
        self.shared.conn_due.store(true, SeqCst);
        std::future::poll_fn(|cx: &mut Context<'_>| self.poll_round(Pin::new(&mut conn), cx)).await
    }

    fn poll_round<C: Future>(
        &mut self,
        mut conn: Pin<&mut C>,
        cx: &mut Context<'_>,
    ) -> Poll<C::Output> {
        let shared = &*self.shared;
        shared.task.register(cx.waker());
        shared.polling.store(true, SeqCst);
        for _ in 0..MAX_ROUNDS {
            let queued = std::mem::take(&mut *shared.queue.lock());
            let run_streams = shared.streams_due.swap(false, SeqCst) || !queued.is_empty();
            self.streams.extend(queued);
            if run_streams {
                // Run every ready stream (completed ones leave the set).
                let mut scx = Context::from_waker(&self.streams_waker);
                while let Poll::Ready(Some(())) = self.streams.poll_next_unpin(&mut scx) {}
            }
            // Then let the connection send what they answered and read what came meanwhile.
            if shared.conn_due.swap(false, SeqCst) {
                let mut ccx = Context::from_waker(&self.conn_waker);
                if let Some(o) = &self.output {
                    o.set_defer(true);
                }
                let polled = conn.as_mut().poll(&mut ccx);
                if let Some(o) = &self.output {
                    o.set_defer(false);
                }
                // What this round answered leaves now, in one write (and what it wrote last,
                // such as an upgrade's `101 Switching Protocols`, before the connection ends).
                self.write_out();
                if let Poll::Ready(out) = polled {
                    shared.polling.store(false, SeqCst);
                    return Poll::Ready(out);
                }
            }
            if !shared.anything_due() {
                shared.polling.store(false, SeqCst);
                // A wake that came just before `polling` was cleared did not wake the task.
                if !shared.anything_due() {
                    return Poll::Pending;
                }
                shared.polling.store(true, SeqCst);
            }
        }
        // Busy: let other tasks run, then go on.
        shared.polling.store(false, SeqCst);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes out what the connection flushed during its poll. A write that cannot finish now
    /// wakes the connection when the socket takes more; a failed one fails the connection's
    /// next read or write.
    fn write_out(&self) {
        if let Some(o) = &self.output {
            let mut ccx = Context::from_waker(&self.conn_waker);
            if o.write_out(&mut ccx) {
                self.shared.conn_due.store(true, SeqCst);
            }
        }
    }
}

/// What a [`Driver`] needs of its connection's [`CoalescedIo`].
trait Output: Send + Sync {
    fn set_defer(&self, defer: bool);
    /// Writes and flushes the output a deferred flush left behind; true if that failed.
    fn write_out(&self, cx: &mut Context<'_>) -> bool;
}

/// Bytes the connection wrote and has not yet handed to the socket, at most this many (more
/// waits for the socket).
const MAX_HELD: usize = 64 * 1024;

struct IoState<T> {
    io: T,
    /// Written by the connection, not yet passed to `io`.
    out: BytesMut,
    /// Set while the driver polls the connection: flushes only mark the output due.
    defer: bool,
    flush_due: bool,
    /// A failure of [`Output::write_out`], returned by the connection's next IO call.
    error: Option<io::Error>,
}

impl<T> IoState<T> {
    fn take_error(&mut self) -> io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

impl<T: AsyncWrite + Unpin> IoState<T> {
    /// Passes the held bytes to `io`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.flush_due = false;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin + Send> Output for Mutex<IoState<T>> {
    fn set_defer(&self, defer: bool) {
        self.lock().defer = defer;
    }

    fn write_out(&self, cx: &mut Context<'_>) -> bool {
        let mut s = self.lock();
        if !s.flush_due && s.out.is_empty() {
            return false;
        }
        match s.poll_flush(cx) {
            Poll::Ready(Err(e)) => {
                s.error = Some(e);
                true
            }
            _ => false,
        }
    }
}

/// The IO of a connection run by a [`Driver`] (see [`Driver::coalesce`]): while the driver polls
/// the connection, writes are held and flushes deferred to the end of that poll; outside
/// those polls (an upgraded connection's own task) it passes everything through.
pub struct CoalescedIo<T> {
    state: Arc<Mutex<IoState<T>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        s.take_error()?;
        Pin::new(&mut s.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.state.lock();
        s.take_error()?;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        // Held bytes go first: outside the driver's polls, or when these would not fit.
        if !s.defer || s.out.len() + len > MAX_HELD {
            ready!(s.poll_drain(cx))?;
        }
        if !s.defer || len > MAX_HELD {
            return Pin::new(&mut s.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            s.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        s.take_error()?;
        s.flush_due = true;
        if s.defer {
            return Poll::Ready(Ok(()));
        }
        s.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        s.take_error()?;
        ready!(s.poll_drain(cx))?;
        Pin::new(&mut s.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;

    #[tokio::test]
    async fn queued_streams_run_inside_the_connection_task() {
        let mut driver = Driver::default();
        let exec = driver.executor();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        // The "connection" hands a stream to the executor, then waits for the stream's answer.
        let conn = async move {
            exec.execute(async move {
                let v = rx.await.unwrap_or(0);
                let _ = done_tx.send(v + 1);
            });
            done_rx.await.unwrap_or(0)
        };
        let driven = tokio::spawn(async move { driver.run(std::pin::pin!(conn)).await });
        tx.send(41).unwrap();
        assert_eq!(driven.await.unwrap(), 42);
    }

    #[tokio::test]
    async fn streams_are_dropped_with_the_driver() {
        let mut driver = Driver::default();
        let exec = driver.executor();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let conn = async move {
            exec.execute(async move {
                // Never completes on its own; dropping it drops `tx`.
                let _tx = tx;
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
            7
        };
        assert_eq!(driver.run(std::pin::pin!(conn)).await, 7);
        drop(driver);
        assert!(rx.await.is_err(), "the stream future was dropped");
    }

    /// Counts the wakes of the task that polls the driver.
    struct Counter(std::sync::atomic::AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_stream_answering_during_the_poll_does_not_wake_the_task() {
        let mut driver = Driver::default();
        let exec = driver.executor();
        let mut polls = 0;
        // The connection hands over a stream on its first poll; the stream "answers" by waking
        // the connection (as h2 does to get a response sent); the second poll sees the answer.
        let conn = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                let w = cx.waker().clone();
                exec.execute(async move { w.wake() });
                return Poll::Pending;
            }
            Poll::Ready(polls)
        });
        let counter = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let conn = std::pin::pin!(conn);
        let mut fut = std::pin::pin!(driver.run(conn));
        assert_eq!(
            fut.as_mut().poll(&mut cx),
            Poll::Ready(2),
            "answered in the same poll"
        );
        assert_eq!(
            counter.0.load(SeqCst),
            0,
            "no self-wake (a yield to another worker)"
        );
    }

    /// Records what reaches the socket.
    #[derive(Clone, Default)]
    struct Socket {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        flushes: Arc<std::sync::atomic::AtomicUsize>,
        broken: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            self.writes.lock().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes.fetch_add(1, SeqCst);
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write_and_flush(
        io: &mut CoalescedIo<Socket>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> io::Result<()> {
        match Pin::new(&mut *io).poll_write(cx, b) {
            Poll::Ready(Ok(n)) => assert_eq!(n, b.len()),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => panic!("the test socket never blocks"),
        }
        match Pin::new(io).poll_flush(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("the test socket never blocks"),
        }
    }

    #[test]
    fn what_a_round_flushes_leaves_in_one_write() {
        let mut driver = Driver::default();
        let socket = Socket::default();
        let mut io = driver.coalesce(socket.clone());
        let seen = socket.clone();
        // The connection answers three requests, flushing after each (as h2 does for bodies
        // over 256 bytes), then waits for more.
        let conn = std::future::poll_fn(move |cx| {
            for b in [b"one ".as_slice(), b"two ", b"three"] {
                write_and_flush(&mut io, cx, b).expect("written");
            }
            assert!(seen.writes.lock().is_empty(), "held while the round runs");
            Poll::<()>::Pending
        });
        let waker = Waker::from(Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let conn = std::pin::pin!(conn);
        let mut fut = std::pin::pin!(driver.run(conn));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(*socket.writes.lock(), vec![b"one two three".to_vec()]);
        assert_eq!(socket.flushes.load(SeqCst), 1);
    }

    #[test]
    fn outside_the_driver_writes_pass_through() {
        // An upgraded connection (exec, port-forward) writes from its own task.
        let mut driver = Driver::default();
        let socket = Socket::default();
        let mut io = driver.coalesce(socket.clone());
        let waker = Waker::from(Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        write_and_flush(&mut io, &mut cx, b"stdout").expect("written");
        assert_eq!(*socket.writes.lock(), vec![b"stdout".to_vec()]);
        assert_eq!(socket.flushes.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_write_out_fails_the_connection() {
        let mut driver = Driver::default();
        let socket = Socket {
            broken: true,
            ..Socket::default()
        };
        let mut io = driver.coalesce(socket);
        let mut polls = 0;
        let conn = std::future::poll_fn(move |cx| {
            polls += 1;
            match write_and_flush(&mut io, cx, b"answer") {
                // The first round's write is held; it fails when the round ends.
                Ok(()) if polls == 1 => Poll::Pending,
                Ok(()) => panic!("the failure was not reported"),
                Err(e) => Poll::Ready(e.kind()),
            }
        });
        // A lost failure would leave the connection waiting forever.
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            driver.run(std::pin::pin!(conn)),
        )
        .await;
        assert_eq!(ended.ok(), Some(io::ErrorKind::BrokenPipe));
    }
}
