//! A channel's buffer: a chain of fixed-capacity rings.
//!
//! Messages go into the newest ring and come out of the oldest. When the
//! newest ring is full, a ring of twice its capacity is linked behind it,
//! up to `RING_BYTES` of messages (or the channel's capacity; a bounded
//! channel's are never smaller than its first, see `largest_ring`); when the
//! oldest ring drains and a newer one exists, the drained ring is freed.
//! So growing never moves a message, and no operation allocates or frees
//! more than one ring of bounded size, whatever the backlog (a single ring
//! that doubled and copied took 7 ms, under the channel's lock, to grow
//! from 2M to 4M `u64` slots; see docs/channels.md).
//!
//! Rings are allocated and freed under the channel's lock. Handing a drained
//! ring out to be freed after the unlock was tried and cost the hot path
//! more than it saved (docs/channels.md, "The buffer").
//!
//! Invariants:
//! - every ring holds its messages oldest first, and every message of
//!   `oldest` (then of `newer[0]`, `newer[1]`, ...) is older than any of a
//!   ring after it;
//! - `oldest` is empty only if `newer` is, so a pop that finds `oldest`
//!   empty knows the buffer is;
//! - `len` is the number of messages in all rings.
//!
//! Dropping the buffer drops its messages oldest first; if a destructor
//! panics, the messages after it are leaked (see `Ring`).

use std::collections::VecDeque;
use std::mem::{self, ManuallyDrop};

use super::ring::Ring;

pub(crate) struct Buffer<T> {
    /// Where messages come out, and go in while there is no chain.
    oldest: Ring<T>,
    /// The sum of the rings' lengths, kept so that `len`, which every send
    /// and receive asks, is one load.
    len: usize,
    /// The channel's capacity (`usize::MAX`: unbounded).
    limit: usize,
    /// Rings linked behind `oldest`, oldest first; messages go into the
    /// last one while there is one.
    newer: VecDeque<Ring<T>>,
}

/// Largest ring allocated up front for a bounded channel.
const PREALLOC: usize = 4096;

/// Capacity of the first ring of a buffer that started with none.
const FIRST_GROWTH: usize = 4;

/// Rings grow to hold this many bytes of messages and no more (but at
/// least `MIN_RING` messages, and a bounded channel's at least its first
/// ring); an emptied ring this large is given back (see
/// `Buffer::advance`).
const RING_BYTES: usize = 64 * 1024;

/// Smallest capacity growth stops at, for large messages.
const MIN_RING: usize = 16;

impl<T> Buffer<T> {
    /// The buffer of a channel of capacity `cap` (`usize::MAX`: unbounded).
    /// A bounded channel's first ring, of up to `PREALLOC` slots, is
    /// allocated now; an unbounded one allocates on its first send.
    pub(crate) fn new(cap: usize) -> Buffer<T> {
        Buffer {
            oldest: Ring::with_capacity(Self::initial(cap)),
            len: 0,
            limit: cap,
            newer: VecDeque::new(),
        }
    }

    /// Capacity a ring starts with, and an emptied large one goes back to.
    fn initial(cap: usize) -> usize {
        if cap == usize::MAX {
            0
        } else {
            cap.min(PREALLOC)
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Moves the message at `src` in as the newest.
    ///
    /// # Safety
    /// As [`Ring::push_from`], less the room: this makes room.
    #[inline]
    pub(crate) unsafe fn push_from(&mut self, src: *const T) {
        if !self.newer.is_empty() || self.oldest.is_full() {
            // SAFETY: the caller's contract.
            return unsafe { self.push_from_slow(src) };
        }
        // SAFETY: `oldest` is the newest ring (no chain) and has room; the
        // rest is the caller's contract.
        unsafe { self.oldest.push_from(src) };
        self.len += 1;
    }

    /// Moves the oldest message to `dst`; false (and `dst` untouched) if the
    /// buffer is empty.
    ///
    /// # Safety
    /// As [`Ring::pop_into`].
    #[inline]
    pub(crate) unsafe fn pop_into(&mut self, dst: *mut T) -> bool {
        // SAFETY: the caller's contract. An empty `oldest` means an empty
        // buffer (invariant).
        if !unsafe { self.oldest.pop_into(dst) } {
            return false;
        }
        self.len -= 1;
        if self.oldest.is_empty()
            && (!self.newer.is_empty() || self.is_trimmable(self.oldest.capacity()))
        {
            self.advance();
        }
        true
    }

    /// `oldest` just drained: free it and make the next ring the oldest, or,
    /// if it is the only ring, give back the memory a backlog grew it to
    /// (otherwise an idle unbounded channel would keep its largest ring for
    /// good); a bounded channel keeps the ring it allocated up front.
    #[cold]
    fn advance(&mut self) {
        if let Some(next) = self.newer.pop_front() {
            self.oldest = next;
            if self.newer.is_empty() {
                // The backlog is back to one ring: so is the memory.
                self.newer = VecDeque::new();
            }
        } else if self.is_trimmable(self.oldest.capacity()) {
            self.oldest = Ring::with_capacity(Self::initial(self.limit));
        }
    }

    /// Whether the only ring, emptied, is to be swapped for a fresh start:
    /// it grew beyond what the channel allocates up front and beyond the
    /// first growth, to `RING_BYTES` or more. (A first-growth ring of large
    /// messages is kept: swapping it would allocate and free a ring per
    /// message on a channel that holds one at a time.)
    #[inline]
    fn is_trimmable(&self, capacity: usize) -> bool {
        // Rings of zero-sized messages hold no memory.
        size_of::<T>() != 0
            && capacity > Self::initial(self.limit).max(FIRST_GROWTH)
            && capacity.saturating_mul(size_of::<T>()) >= RING_BYTES
    }

    /// Capacity rings grow to and no further. A bounded channel's are
    /// never smaller than the ring it allocated up front: when that one
    /// drains and is freed, the ring left in its place is as large, so a
    /// backlog that fitted without allocating still does.
    fn largest_ring(&self) -> usize {
        let by_size = match size_of::<T>() {
            0 => usize::MAX,
            size => (RING_BYTES / size).max(MIN_RING),
        };
        by_size.min(self.limit).max(Self::initial(self.limit))
    }

    /// `push_from` when there is a chain or `oldest` is full: into the
    /// newest ring, linking a new one behind it if that is full.
    ///
    /// # Safety
    /// As `push_from`.
    #[cold]
    unsafe fn push_from_slow(&mut self, src: *const T) {
        let mut newest = self.newest();
        if newest.is_full() {
            self.link_ring();
            newest = self.newest();
        }
        // SAFETY: `newest` has room: it was not full, or is the ring just
        // linked, of capacity at least 1, as only channels with `limit >= 1`
        // buffer. The rest is the caller's contract.
        unsafe { newest.push_from(src) };
        self.len += 1;
    }

    /// The ring messages go into.
    #[inline]
    fn newest(&mut self) -> &mut Ring<T> {
        match self.newer.back_mut() {
            Some(ring) => ring,
            None => &mut self.oldest,
        }
    }

    /// The newest ring is full: links one twice its capacity (at most
    /// `largest_ring`) behind it.
    #[inline(never)]
    fn link_ring(&mut self) {
        let largest = self.largest_ring();
        let full = self.newest().capacity();
        let capacity = full
            .saturating_mul(2)
            .clamp(FIRST_GROWTH.min(largest), largest);
        let ring = Ring::with_capacity(capacity);
        if self.len == 0 {
            // Only an `oldest` of capacity 0, which owns no memory, is full
            // while the buffer is empty; it is replaced rather than chained,
            // so an empty `oldest` still means an empty buffer.
            self.oldest = ring;
        } else {
            self.newer.push_back(ring);
        }
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        if !mem::needs_drop::<T>() {
            return;
        }
        // Oldest ring first. If a message's destructor panics, the rest of
        // its ring is leaked (`Ring`'s drop) and so are the newer rings:
        // this local is never dropped on the way out, and the fields left
        // behind hold no message.
        let mut newer = ManuallyDrop::new(mem::take(&mut self.newer));
        drop(mem::replace(&mut self.oldest, Ring::with_capacity(0)));
        while let Some(ring) = newer.pop_front() {
            drop(ring);
        }
        drop(ManuallyDrop::into_inner(newer));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::mem::MaybeUninit;
    use std::rc::Rc;

    use proptest::prelude::*;

    use super::*;

    fn push<T>(b: &mut Buffer<T>, v: T) {
        let v = ManuallyDrop::new(v);
        // SAFETY: `v` is initialised and never used or dropped again.
        unsafe { b.push_from(&*v) };
    }

    fn pop<T>(b: &mut Buffer<T>) -> Option<T> {
        let mut out = MaybeUninit::uninit();
        // SAFETY: `out` is a fresh local; initialised exactly when `true`.
        unsafe { b.pop_into(out.as_mut_ptr()).then(|| out.assume_init()) }
    }

    /// Capacities of the rings in the chain, oldest first.
    fn rings<T>(b: &Buffer<T>) -> Vec<usize> {
        let newer = b.newer.iter();
        std::iter::once(&b.oldest)
            .chain(newer)
            .map(Ring::capacity)
            .collect()
    }

    struct Msg(u32, Rc<RefCell<Vec<u32>>>);
    impl Drop for Msg {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0);
            if self.0 == u32::MAX {
                unreachable!();
            }
        }
    }

    proptest! {
        /// Any sequence of pushes and pops behaves as a `VecDeque`, across
        /// ring boundaries, growth and trimming; no ring exceeds the limit,
        /// an empty buffer is one ring, and every message is dropped exactly
        /// once, including those left when the buffer is dropped.
        #[test]
        fn behaves_as_a_fifo_and_drops_each_message_once(
            cap in prop_oneof![1usize..40, Just(usize::MAX)],
            steps in prop::collection::vec(prop::bool::weighted(0.55), 0..400),
        ) {
            let drops = Rc::new(RefCell::new(Vec::new()));
            let mut buf = Buffer::new(cap);
            let mut model = VecDeque::new();
            let mut next = 0u32;
            for is_push in steps {
                if is_push {
                    push(&mut buf, Msg(next, drops.clone()));
                    model.push_back(next);
                    next += 1;
                } else {
                    let got = pop(&mut buf).map(|m| m.0);
                    prop_assert_eq!(got, model.pop_front());
                }
                prop_assert_eq!(buf.len(), model.len());
                prop_assert!(rings(&buf).iter().all(|&c| c <= cap));
                prop_assert!(!buf.oldest.is_empty() || rings(&buf).len() == 1);
            }
            let dropped_before = drops.borrow().len();
            drop(buf);
            let drops = drops.borrow();
            // What was left is dropped oldest first, and nothing twice.
            prop_assert_eq!(&drops[dropped_before..], &model.iter().copied().collect::<Vec<_>>()[..]);
            let mut all = drops.clone();
            all.sort_unstable();
            prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
        }
    }

    #[test]
    fn growth_links_rings_and_moves_no_message() {
        let mut buf = Buffer::<u64>::new(usize::MAX);
        for i in 0..28 {
            push(&mut buf, i);
        }
        assert_eq!(rings(&buf), [4, 8, 16]);
        // The first message still sits where it was written: nothing was
        // copied to make room.
        let first = buf.oldest.oldest_ptr();
        push(&mut buf, 28);
        assert_eq!(buf.oldest.oldest_ptr(), first);
        assert_eq!(rings(&buf), [4, 8, 16, 32]);
        assert_eq!(
            (0..29).map(|_| pop(&mut buf).unwrap()).collect::<Vec<_>>(),
            (0..29).collect::<Vec<_>>()
        );
    }

    #[test]
    fn drained_rings_leave_the_chain_and_a_large_last_one_is_swapped() {
        let mut buf = Buffer::<u64>::new(usize::MAX);
        for i in 0..12 {
            push(&mut buf, i);
        }
        assert_eq!(rings(&buf), [4, 8]);
        for _ in 0..3 {
            pop(&mut buf);
            assert_eq!(rings(&buf), [4, 8]);
        }
        pop(&mut buf);
        assert_eq!(rings(&buf), [8]);
        assert_eq!(buf.newer.capacity(), 0, "no chain is kept for one ring");
        // A ring of `RING_BYTES` that drains is swapped for a fresh start.
        let mut buf = Buffer::<u64>::new(usize::MAX);
        let largest = RING_BYTES / size_of::<u64>();
        for i in 0..largest as u64 * 2 {
            push(&mut buf, i);
        }
        while pop(&mut buf).is_some() {}
        assert_eq!(rings(&buf), [0]);
    }

    #[test]
    fn a_first_ring_of_large_messages_is_kept_when_it_empties() {
        const BIG: usize = RING_BYTES / 2;
        let mut buf = Buffer::<[u8; BIG]>::new(usize::MAX);
        push(&mut buf, [1; BIG]);
        let ring = buf.oldest.oldest_ptr();
        for i in 0..10 {
            assert_eq!(pop(&mut buf).map(|m| m[0]), Some(1 + i));
            assert_eq!(rings(&buf), [FIRST_GROWTH], "kept while idle");
            push(&mut buf, [2 + i; BIG]);
            assert_eq!(rings(&buf), [FIRST_GROWTH]);
        }
        assert_eq!(
            buf.oldest.oldest_ptr().cast::<u8>(),
            ring.cast::<u8>().wrapping_add(10 % FIRST_GROWTH * BIG),
            "the same ring, not a new one"
        );
        // Grown past the first ring, it is swapped once it drains.
        for _ in 0..FIRST_GROWTH {
            push(&mut buf, [0; BIG]);
        }
        while pop(&mut buf).is_some() {}
        assert_eq!(rings(&buf), [0]);
    }

    #[test]
    fn rings_stop_growing_at_ring_bytes_or_min_ring_messages() {
        let mut buf = Buffer::<u64>::new(usize::MAX);
        for i in 0..100_000 {
            push(&mut buf, i);
        }
        let largest = RING_BYTES / size_of::<u64>();
        let caps = rings(&buf);
        assert!(caps.iter().all(|&c| c <= largest), "{caps:?}");
        assert_eq!(caps[caps.len() - 2..], [largest, largest]);
        // Large messages: at least `MIN_RING` of them a ring.
        let mut buf = Buffer::<[u8; RING_BYTES / 2]>::new(usize::MAX);
        for _ in 0..3 * MIN_RING {
            push(&mut buf, [0; RING_BYTES / 2]);
        }
        assert_eq!(rings(&buf), [4, 8, MIN_RING, MIN_RING, MIN_RING]);
    }

    #[test]
    fn a_bounded_buffer_keeps_its_ring_and_grows_only_to_its_limit() {
        let mut buf = Buffer::<u64>::new(8);
        for round in 0..3 {
            for i in 0..8 {
                push(&mut buf, i);
            }
            while pop(&mut buf).is_some() {}
            assert_eq!(rings(&buf), [8], "round {round}");
        }
        // Beyond what is allocated up front, rings are as large as that,
        // or as `RING_BYTES` allow if that is more, but never more than the
        // channel's capacity.
        let mut buf = Buffer::<u64>::new(PREALLOC * 3);
        for i in 0..(PREALLOC * 3 + 1) as u64 {
            push(&mut buf, i);
        }
        assert_eq!(rings(&buf), [PREALLOC, RING_BYTES / 8, RING_BYTES / 8]);
        let mut buf = Buffer::<u64>::new(PREALLOC + 10);
        for i in 0..(PREALLOC * 2) as u64 {
            push(&mut buf, i);
        }
        assert_eq!(rings(&buf), [PREALLOC, PREALLOC + 10]);
        let mut buf = Buffer::<[u64; 8]>::new(PREALLOC * 3);
        for _ in 0..(PREALLOC * 3) {
            push(&mut buf, [0; 8]);
        }
        assert_eq!(rings(&buf), [PREALLOC, PREALLOC, PREALLOC]);
    }

    #[test]
    fn a_panicking_destructor_leaks_the_newer_rings() {
        let drops = Rc::new(RefCell::new(Vec::new()));
        let mut buf = Buffer::new(usize::MAX);
        // Rings of 4 and 8: message 1 panics in the first; 4..12 are in
        // the second and must not be dropped during the unwind.
        for i in 0..12 {
            push(
                &mut buf,
                Msg(if i == 1 { u32::MAX } else { i }, drops.clone()),
            );
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(buf)));
        assert!(r.is_err());
        assert_eq!(*drops.borrow(), [0, u32::MAX]);
    }

    #[test]
    fn zero_sized_messages_chain_without_storage() {
        let mut buf = Buffer::<()>::new(usize::MAX);
        for _ in 0..100_000 {
            push(&mut buf, ());
        }
        assert_eq!(buf.len(), 100_000);
        assert!((0..100_000).all(|_| pop(&mut buf).is_some()));
        assert!(pop(&mut buf).is_none());
    }
}
