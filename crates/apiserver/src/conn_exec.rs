//! Runs the requests of one HTTP/2 connection inside the connection's own task.
//!
//! hyper hands every HTTP/2 stream to an executor. Spawning each one as a tokio task makes a
//! request cross threads twice (the connection task wakes an idle worker to run the handler, and
//! the handler wakes the connection task to send the response); under a steady stream of small
//! requests (5,000 kubelets renewing their Leases) these wake-ups cost more than the requests.
//! [`ConnExecutor`] instead queues the stream futures and [`Driver`] polls them together with the
//! connection, in one task: a request that waits (on the store, a watch) still waits without
//! blocking the others, and different connections still run on different workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use parking_lot::Mutex;

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
                if let Poll::Ready(out) = conn.as_mut().poll(&mut ccx) {
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
}
