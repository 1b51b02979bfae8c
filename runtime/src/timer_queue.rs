//! The deadline-ordered queue behind each P's timers.
//!
//! Most timers a program arms have the same duration as the one armed just
//! before (a loop of `sleep(d)`, a read deadline per request, 100,000
//! coroutines each sleeping 10 ms), so they arrive in deadline order. Those
//! go to `run`, a FIFO whose deadlines only grow: push and pop are O(1) and
//! touch one cache line. A timer earlier than the newest one in `run` goes
//! to a binary heap. The next timer is the earlier of the two fronts, so
//! the order is by (deadline, arrival) whatever mix arrives, and a program
//! whose timers come in no order at all costs what a heap alone would.
//!
//! The entries' order key is (deadline, sequence number); the sequence
//! number makes equal deadlines fire in arrival order in both structures.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

pub(crate) struct TimerQueue<T> {
    run: VecDeque<Slot<T>>,
    heap: BinaryHeap<Slot<T>>,
    seq: u64,
}

struct Slot<T> {
    when: u64,
    seq: u64,
    item: T,
}

impl<T> Slot<T> {
    fn key(&self) -> (u64, u64) {
        (self.when, self.seq)
    }
}

impl<T> PartialEq for Slot<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            run: VecDeque::new(),
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    pub(crate) fn push(&mut self, when: u64, item: T) {
        self.seq += 1;
        let slot = Slot {
            when,
            seq: self.seq,
            item,
        };
        if self.run.back().is_none_or(|last| when >= last.when) {
            self.run.push_back(slot);
        } else {
            self.heap.push(slot);
        }
    }

    /// The earliest entry, and whether it is at the front of `run` (else
    /// at the top of `heap`).
    fn earliest(&self) -> Option<(&Slot<T>, bool)> {
        match (self.run.front(), self.heap.peek()) {
            (Some(r), Some(h)) if h.key() < r.key() => Some((h, false)),
            (Some(r), _) => Some((r, true)),
            (None, h) => h.map(|h| (h, false)),
        }
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_when(&self) -> Option<u64> {
        self.earliest().map(|(slot, _)| slot.when)
    }

    /// Removes and returns the earliest entry if its deadline is `<= now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<T> {
        let (slot, in_run) = self.earliest()?;
        if slot.when > now {
            return None;
        }
        let slot = if in_run {
            self.run.pop_front()
        } else {
            self.heap.pop()
        };
        slot.map(|s| s.item)
    }

    pub(crate) fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    /// Keeps only the entries `keep` accepts (order is preserved).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.run.retain(|s| keep(&s.item));
        self.heap.retain(|s| keep(&s.item));
    }

    /// Empties the queue, handing back what it held with its deadline.
    pub(crate) fn take_all(&mut self) -> Vec<(u64, T)> {
        let mut all: Vec<(u64, T)> = self.run.drain(..).map(|s| (s.when, s.item)).collect();
        all.extend(
            std::mem::take(&mut self.heap)
                .into_iter()
                .map(|s| (s.when, s.item)),
        );
        all
    }
}

#[cfg(test)]
mod tests {
    use super::TimerQueue;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn equal_deadlines_fire_in_arrival_order_across_both_halves() {
        let mut q = TimerQueue::default();
        q.push(10, "a"); // run
        q.push(5, "b"); // heap (earlier than the run's back)
        q.push(10, "c"); // run
        q.push(5, "d"); // heap
        assert_eq!(q.next_when(), Some(5));
        assert_eq!(q.pop_due(4), None, "nothing is due before 5");
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(10)).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_when(), None);
    }

    #[test]
    fn retain_and_take_all_keep_what_they_should() {
        let mut q = TimerQueue::default();
        for (when, x) in [(3, 1), (1, 2), (4, 3), (2, 4), (5, 5)] {
            q.push(when, x);
        }
        q.retain(|x| x % 2 == 1);
        assert_eq!(q.len(), 3);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(u64::MAX)).collect();
        assert_eq!(order, [1, 3, 5]);
        q.push(7, 7);
        q.push(6, 6);
        let mut all = q.take_all();
        all.sort();
        assert_eq!(all, [(6, 6), (7, 7)]);
        assert_eq!(q.len(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u64),
        PopDue(u64),
        DropMultiplesOf(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..50).prop_map(Op::Push),
            3 => (0u64..60).prop_map(Op::PopDue),
            1 => (2u32..5).prop_map(Op::DropMultiplesOf),
        ]
    }

    proptest! {
        /// Against a model ordered by (deadline, arrival): same entries,
        /// same order, same earliest deadline, after any operation mix.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut q = TimerQueue::default();
            let mut model = BTreeMap::new();
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Push(when) => {
                        next_id += 1;
                        q.push(when, next_id);
                        model.insert((when, next_id), next_id);
                    }
                    Op::PopDue(now) => {
                        let expected = model
                            .first_key_value()
                            .filter(|(k, _)| k.0 <= now)
                            .map(|(&k, &v)| (k, v));
                        if let Some((k, _)) = expected {
                            model.remove(&k);
                        }
                        prop_assert_eq!(q.pop_due(now), expected.map(|(_, v)| v));
                    }
                    Op::DropMultiplesOf(m) => {
                        q.retain(|id| id % m != 0);
                        model.retain(|_, id| *id % m != 0);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.next_when(), model.keys().next().map(|k| k.0));
            }
        }
    }
}
