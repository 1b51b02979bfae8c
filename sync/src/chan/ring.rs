//! A fixed-capacity ring that moves messages in from, and out to, memory
//! the caller names by pointer. A channel's buffer chains these
//! (`buffer.rs`).
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

impl<T> Ring<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Ring<T> {
        Ring {
            slots: Box::new_uninit_slice(capacity),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Moves the message at `src` in as the newest.
    ///
    /// # Safety
    /// The ring is not full. `src` holds an initialised `T` that the caller
    /// gives to the ring: it must neither use nor drop it afterwards. `src`
    /// does not point into the ring.
    #[inline]
    pub(crate) unsafe fn push_from(&mut self, src: *const T) {
        debug_assert!(!self.is_full());
        let i = self.physical(self.len);
        // SAFETY: the ring is not full (the caller's contract), so slot `i`
        // is just past the occupied run and free (invariant); the caller
        // hands the value over from memory outside the ring (its contract),
        // so the two do not overlap.
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

    /// Where the oldest message sits (tests check that growing the buffer
    /// leaves messages in place).
    #[cfg(test)]
    pub(crate) fn oldest_ptr(&self) -> *const T {
        self.slots[self.head].as_ptr()
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

    proptest! {
        /// Any sequence of pushes (while there is room) and pops behaves as
        /// a `VecDeque`, across wrap-arounds; every message is dropped
        /// exactly once, including those left when the ring is dropped.
        #[test]
        fn behaves_as_a_fifo_and_drops_each_message_once(
            capacity in 1usize..9,
            steps in prop::collection::vec(prop::bool::weighted(0.55), 0..200),
        ) {
            let drops = Rc::new(RefCell::new(Vec::new()));
            struct Msg(u32, Rc<RefCell<Vec<u32>>>);
            impl Drop for Msg {
                fn drop(&mut self) {
                    self.1.borrow_mut().push(self.0);
                }
            }
            let mut ring = Ring::with_capacity(capacity);
            let mut model = VecDeque::new();
            let mut next = 0u32;
            for is_push in steps {
                if is_push {
                    prop_assert_eq!(ring.is_full(), model.len() == capacity);
                    if !ring.is_full() {
                        push(&mut ring, Msg(next, drops.clone()));
                        model.push_back(next);
                        next += 1;
                    }
                } else {
                    let got = pop(&mut ring).map(|m| m.0);
                    prop_assert_eq!(got, model.pop_front());
                }
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
        let mut ring = Ring::with_capacity(4);
        for i in 0..4 {
            push(&mut ring, Msg(i, drops.clone()));
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(ring)));
        assert!(r.is_err());
        assert_eq!(*drops.borrow(), [0, 1]);
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
