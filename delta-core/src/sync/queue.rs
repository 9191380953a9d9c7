//! The pass's task queue: the planner puts transfers, the workers take them.
//!
//! A bounded queue with hysteresis, so the threads wake each other in batches rather than
//! once per task: a planner that filled the queue sleeps until the workers have taken half
//! of it, and a worker is woken only when one waits for work. With a channel (one wake-up of
//! the planner per task taken, and a mutex handed from worker to worker around `recv`), a
//! pass of many small files spent much of its time switching threads.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A bounded multi-consumer queue (see the module doc).
pub(crate) struct WorkQueue<T> {
    state: Mutex<State<T>>,
    /// A task was put, or the queue closed: for idle workers.
    ready: Condvar,
    /// The queue drained to half: for the planner.
    room: Condvar,
    cap: usize,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Workers waiting for a task.
    idle: usize,
    /// The planner waits for room.
    full: bool,
}

impl<T> WorkQueue<T> {
    /// A queue holding at most `cap` tasks (at least 2).
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(2);
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(cap),
                closed: false,
                idle: 0,
                full: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a task, waiting while the queue is full (until it has drained to half).
    pub(crate) fn put(&self, task: T) {
        let mut g = self.lock();
        if g.items.len() >= self.cap {
            g.full = true;
            while g.full {
                g = self.room.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        }
        g.items.push_back(task);
        if g.idle > 0 {
            self.ready.notify_one();
        }
    }

    /// Takes the oldest task, waiting for one; `None` once the queue is closed and empty.
    pub(crate) fn take(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if let Some(task) = g.items.pop_front() {
                if g.full && g.items.len() <= self.cap / 2 {
                    g.full = false;
                    self.room.notify_one();
                }
                return Some(task);
            }
            if g.closed {
                return None;
            }
            g.idle += 1;
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
            g.idle -= 1;
        }
    }

    /// No more tasks: workers finish what is queued, then [`Self::take`] says `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Closes the queue when dropped (the planner's end, even if it panics, so the workers
/// finish and the panic reaches the caller instead of a hang).
pub(crate) struct CloseOnDrop<'a, T>(pub(crate) &'a WorkQueue<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_is_taken_once_and_the_queue_never_holds_more_than_its_bound() {
        let q = WorkQueue::new(8);
        let seen = Mutex::new(Vec::new());
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while let Some(t) = q.take() {
                        most.fetch_max(q.lock().items.len(), Ordering::Relaxed);
                        seen.lock().unwrap().push(t);
                    }
                });
            }
            let _close = CloseOnDrop(&q);
            for t in 0..10_000u32 {
                q.put(t);
                most.fetch_max(q.lock().items.len(), Ordering::Relaxed);
            }
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
        assert!(most.load(Ordering::Relaxed) <= 8);
    }

    #[test]
    fn a_full_queue_holds_the_planner_until_half_is_taken() {
        let q = WorkQueue::new(4);
        for t in 0..4 {
            q.put(t);
        }
        let put = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                q.put(4);
                put.store(1, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(q.take(), Some(0));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(put.load(Ordering::SeqCst), 0, "3 of 4 queued: still full");
            assert_eq!(q.take(), Some(1));
        });
        assert_eq!(put.load(Ordering::SeqCst), 1);
        q.close();
        let rest: Vec<_> = std::iter::from_fn(|| q.take()).collect();
        assert_eq!(rest, [2, 3, 4]);
    }

    #[test]
    fn a_planner_that_panics_still_releases_the_workers() {
        let q = WorkQueue::<u32>::new(4);
        let r = std::thread::scope(|s| {
            let w = s.spawn(|| std::iter::from_fn(|| q.take()).count());
            let planner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _close = CloseOnDrop(&q);
                q.put(1);
                panic!("planner fails");
            }));
            assert!(planner.is_err());
            w.join().unwrap()
        });
        assert_eq!(r, 1);
    }

    proptest! {
        /// One worker takes tasks in the order they were put, whatever the bound.
        #[test]
        fn one_worker_sees_fifo_order(cap in 2usize..16, n in 0u32..200) {
            let q = WorkQueue::new(cap);
            let got = std::thread::scope(|s| {
                let w = s.spawn(|| std::iter::from_fn(|| q.take()).collect::<Vec<_>>());
                let _close = CloseOnDrop(&q);
                for t in 0..n {
                    q.put(t);
                }
                drop(_close);
                w.join().unwrap()
            });
            prop_assert_eq!(got, (0..n).collect::<Vec<_>>());
        }
    }
}
