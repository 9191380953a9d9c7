//! Largest first: a gate that lets one large job run at a time, the largest waiting one next.
//!
//! A receiver's transfers compute the signatures of their old files at about the same moment
//! (a final pass lists its few changed files at once), and each signature already runs on all
//! cores. Run side by side, they all finish late; the largest file's delta, its reply and its
//! rebuild — the pass's longest chain — then start last. Through the gate they run one after
//! the other, largest first, in the same total time: the longest chain starts as early as it
//! can, and the smaller files' chains run alongside it. A sender's workers take their deltas
//! through a gate of their own for the same reason.
//!
//! Jobs below [`Gate::min`] bytes pass straight through: they are over in well under a
//! millisecond and would only wait behind large ones.

use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};

/// See the module documentation.
pub(crate) struct Gate {
    state: Mutex<State>,
    turn: Condvar,
    min: u64,
}

#[derive(Default)]
struct State {
    /// A job holds the gate.
    busy: bool,
    /// Waiting jobs: the largest first, then the earliest.
    waiting: BinaryHeap<(u64, std::cmp::Reverse<u64>)>,
    tickets: u64,
}

/// Holding the gate; dropping it lets the next job in.
pub(crate) struct Pass<'g>(Option<&'g Gate>);

impl Gate {
    /// A gate for jobs of at least `min` bytes.
    pub(crate) fn new(min: u64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
            min,
        }
    }

    /// Waits until no other job holds the gate and no larger one is waiting, for a job of
    /// `size` bytes.
    pub(crate) fn enter(&self, size: u64) -> Pass<'_> {
        if size < self.min {
            return Pass(None);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let me = (size, std::cmp::Reverse(st.tickets));
        st.tickets += 1;
        st.waiting.push(me);
        while st.busy || st.waiting.peek() != Some(&me) {
            st = self.turn.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting.pop();
        st.busy = true;
        Pass(Some(self))
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.0 {
            gate.state.lock().unwrap_or_else(|e| e.into_inner()).busy = false;
            gate.turn.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waiting_jobs_go_largest_first_and_small_ones_pass() {
        let gate = Arc::new(Gate::new(100));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = gate.enter(500);
        let mut threads = Vec::new();
        for size in [200u64, 900, 300, 900] {
            let (gate, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _p = gate.enter(size);
                order.lock().unwrap().push(size);
            }));
        }
        while gate.state.lock().unwrap().waiting.len() < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // A small job is not held up by the busy gate.
        drop(gate.enter(99));
        assert!(order.lock().unwrap().is_empty(), "{:?}", order.lock());
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [900, 900, 300, 200]);
    }
}
