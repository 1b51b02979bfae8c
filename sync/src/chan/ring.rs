//! The channel buffer: a growable ring that moves messages in from, and out
//! to, memory the caller names by pointer.
//!
//! `VecDeque` takes and returns messages by value. Where the compiler cannot
//! see through a step (a call that may grow the buffer, a return through an
//! enum), each such step keeps its own copy of the message on the stack, and
//! a large message then needed several times its size of stack: 32 KiB did
//! not fit a 256 KiB coroutine stack. With this ring a message is copied
//! once from the sender's memory into a slot, and once from the slot into
//! the receiver's memory, and no frame holds a message-sized temporary.
//!
//! Invariant: the slots `head, head + 1, ..., head + len - 1` (modulo the
//! capacity) hold initialised messages, oldest first; every other slot is
//! uninitialised. Dropping the ring drops its messages oldest first; if a
//! destructor panics the messages after it are leaked (as crossbeam-channel
//! does: dropping them while unwinding would abort at the next panic).

use std::mem::MaybeUninit;
use std::ptr;

pub(crate) struct Ring<T> {
    slots: Box<[MaybeUninit<T>]>,
    /// Index of the oldest message.
    head: usize,
    len: usize,
}

/// Capacity of the first allocation of a ring that started with none.
const FIRST_GROWTH: usize = 4;

impl<T> Ring<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Ring<T> {
        Ring {
            slots: Box::new_uninit_slice(capacity),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Moves the message at `src` in as the newest.
    ///
    /// # Safety
    /// `src` holds an initialised `T` that the caller gives to the ring: it
    /// must neither use nor drop it afterwards. `src` does not point into
    /// the ring.
    #[inline]
    pub(crate) unsafe fn push_from(&mut self, src: *const T) {
        if self.len == self.slots.len() {
            self.grow();
        }
        let i = self.physical(self.len);
        // SAFETY: `i` is in bounds and past the occupied run, so the slot is
        // free (invariant); the caller hands the value over from memory
        // outside the ring (its contract), so the two do not overlap.
        unsafe { ptr::copy_nonoverlapping(src, self.slots[i].as_mut_ptr(), 1) };
        self.len += 1;
    }

    /// Moves the oldest message to `dst`; false (and `dst` untouched) if the
    /// ring is empty.
    ///
    /// # Safety
    /// `dst` is valid for a write of a `T` and does not point into the ring;
    /// what it held is overwritten without being dropped.
    #[inline]
    pub(crate) unsafe fn pop_into(&mut self, dst: *mut T) -> bool {
        if self.len == 0 {
            return false;
        }
        // SAFETY: the slot at `head` holds the oldest message (invariant,
        // `len > 0`); ownership moves to `dst`, and the slot counts as free
        // from the update below on.
        unsafe { ptr::copy_nonoverlapping(self.slots[self.head].as_ptr(), dst, 1) };
        self.head = self.physical(1);
        self.len -= 1;
        true
    }

    /// Gives back storage beyond `capacity` (or beyond `len`, if larger).
    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        if capacity < self.slots.len() {
            self.relocate(capacity.max(self.len));
        }
    }

    /// Index in `slots` of the `i`-th message (`i <= capacity`).
    #[inline]
    fn physical(&self, i: usize) -> usize {
        let j = self.head + i;
        if j >= self.slots.len() {
            j - self.slots.len()
        } else {
            j
        }
    }

    #[cold]
    fn grow(&mut self) {
        let capacity = self.slots.len().saturating_mul(2).max(FIRST_GROWTH);
        self.relocate(capacity);
    }

    /// Moves the messages, oldest first, to the front of fresh storage of
    /// `capacity >= len` slots.
    fn relocate(&mut self, capacity: usize) {
        debug_assert!(capacity >= self.len);
        let mut slots = Box::<[T]>::new_uninit_slice(capacity);
        // The occupied run: from `head` to the end of the storage, then
        // wrapped around from index 0.
        let first = self.len.min(self.slots.len() - self.head);
        let src = self.slots.as_ptr();
        let dst = slots.as_mut_ptr();
        // SAFETY: both runs are in bounds of the old storage and hold its
        // messages (invariant); they land on `0..len` of the new storage,
        // which has room (`capacity >= len`) and is a separate allocation.
        // The old storage is dropped as `MaybeUninit`, so the messages are
        // moved, not duplicated.
        unsafe {
            ptr::copy_nonoverlapping(src.add(self.head), dst, first);
            ptr::copy_nonoverlapping(src, dst.add(first), self.len - first);
        }
        self.slots = slots;
        self.head = 0;
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // A backlog of plain data (or of `()`) needs no walk.
        if !std::mem::needs_drop::<T>() {
            return;
        }
        while self.len > 0 {
            let oldest = self.head;
            // The slot leaves the ring before its message is dropped: if the
            // destructor panics, the rest are leaked, not dropped twice.
            self.head = self.physical(1);
            self.len -= 1;
            // SAFETY: the slot held the oldest message (invariant) and no
            // longer belongs to the occupied run.
            unsafe { self.slots[oldest].assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::mem::ManuallyDrop;
    use std::rc::Rc;

    use proptest::prelude::*;

    use super::*;

    fn push<T>(r: &mut Ring<T>, v: T) {
        let v = ManuallyDrop::new(v);
        // SAFETY: `v` is initialised and never used or dropped again.
        unsafe { r.push_from(&*v) };
    }

    fn pop<T>(r: &mut Ring<T>) -> Option<T> {
        let mut out = MaybeUninit::uninit();
        // SAFETY: `out` is a fresh local; initialised exactly when `true`.
        unsafe { r.pop_into(out.as_mut_ptr()).then(|| out.assume_init()) }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Push,
        Pop,
        Shrink(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Push),
            3 => Just(Step::Pop),
            1 => (0usize..12).prop_map(Step::Shrink),
        ]
    }

    proptest! {
        /// Any sequence of pushes, pops and shrinks behaves as a `VecDeque`,
        /// across wrap-arounds and relocations; every message is dropped
        /// exactly once, including those left when the ring is dropped.
        #[test]
        fn behaves_as_a_fifo_and_drops_each_message_once(
            initial in 0usize..6,
            steps in prop::collection::vec(step(), 0..200),
        ) {
            let drops = Rc::new(RefCell::new(Vec::new()));
            struct Msg(u32, Rc<RefCell<Vec<u32>>>);
            impl Drop for Msg {
                fn drop(&mut self) {
                    self.1.borrow_mut().push(self.0);
                }
            }
            let mut ring = Ring::with_capacity(initial);
            let mut model = VecDeque::new();
            let mut next = 0u32;
            for s in steps {
                match s {
                    Step::Push => {
                        push(&mut ring, Msg(next, drops.clone()));
                        model.push_back(next);
                        next += 1;
                    }
                    Step::Pop => {
                        let got = pop(&mut ring).map(|m| {
                            let id = m.0;
                            drop(m);
                            id
                        });
                        prop_assert_eq!(got, model.pop_front());
                    }
                    Step::Shrink(c) => {
                        let before = ring.capacity();
                        ring.shrink_to(c);
                        let expected = if c < before { c.max(ring.len()) } else { before };
                        prop_assert_eq!(ring.capacity(), expected);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.is_empty(), model.is_empty());
            }
            let dropped_before = drops.borrow().len();
            drop(ring);
            let drops = drops.borrow();
            // What was left is dropped oldest first, and nothing twice.
            prop_assert_eq!(&drops[dropped_before..], &model.iter().copied().collect::<Vec<_>>()[..]);
            let mut all = drops.clone();
            all.sort_unstable();
            prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_destructor_leaks_the_rest_and_drops_none_twice() {
        let drops = Rc::new(RefCell::new(Vec::new()));
        struct Msg(u32, Rc<RefCell<Vec<u32>>>);
        impl Drop for Msg {
            fn drop(&mut self) {
                self.1.borrow_mut().push(self.0);
                if self.0 == 1 {
                    panic!("message 1 refuses to go");
                }
            }
        }
        let mut ring = Ring::with_capacity(2);
        for i in 0..4 {
            push(&mut ring, Msg(i, drops.clone()));
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(ring)));
        assert!(r.is_err());
        assert_eq!(*drops.borrow(), [0, 1]);
    }

    #[test]
    fn zero_sized_messages_need_no_storage_to_grow() {
        let mut ring = Ring::<()>::with_capacity(0);
        for _ in 0..100_000 {
            push(&mut ring, ());
        }
        assert_eq!(ring.len(), 100_000);
        assert!((0..100_000).all(|_| pop(&mut ring).is_some()));
        assert!(pop(&mut ring).is_none());
    }

    #[test]
    fn a_large_message_moves_through_the_ring_intact() {
        let mut ring = Ring::with_capacity(1);
        let msg: Box<[u8; 64 << 10]> = Box::new([7; 64 << 10]);
        push(&mut ring, *msg);
        let mut back = Box::new([0u8; 64 << 10]);
        // SAFETY: `back` is valid for a write of the message type.
        assert!(unsafe { ring.pop_into(&mut *back) });
        assert!(back.iter().all(|&b| b == 7));
    }
}
