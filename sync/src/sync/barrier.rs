//! `Barrier`: std's API. Arrivals are counted under a short spin lock;
//! all but the last queue a waiter; the last (the leader) starts the next
//! generation by resetting the count and takes the whole queue to wake.
//! Each round's waiters are woken by that round's leader only, so
//! generations cannot mix.

use std::fmt;

use corun_runtime::{WaitReason, yield_point};

use super::waitq::{List, Waiter};
use crate::chan::lock::SpinLock;

/// Returned by [`Barrier::wait`]; one waiter per generation is the leader.
///
/// ```
/// let b = corun_sync::sync::Barrier::new(1);
/// assert!(b.wait().is_leader()); // alone: always the leader
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one waiter per generation (the last to arrive).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let b = Arc::new(corun_sync::sync::Barrier::new(3));
    /// let hs: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let b = b.clone();
    ///         corun_runtime::spawn(move || b.wait().is_leader())
    ///     })
    ///     .collect();
    /// let leaders = hs.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
    /// assert_eq!(leaders, 1); // exactly one per generation
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

/// Lets `n` coroutines or threads wait until all have arrived, reusable for
/// round after round, with `std::sync::Barrier`'s API. Waiting parks the
/// coroutine (wait reason "barrier") or the thread.
///
/// ```
/// use std::sync::Arc;
/// use corun_sync::sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(10));
/// let hs: Vec<_> = (0..10)
///     .map(|_| {
///         let b = barrier.clone();
///         corun_runtime::go!(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap());
/// assert_eq!(leaders.filter(|&l| l).count(), 1);
/// ```
pub struct Barrier {
    n: usize,
    state: SpinLock<State>,
}

struct State {
    arrived: usize,
    generation: u64,
    waiters: List,
}

impl Barrier {
    /// A barrier for `n` parties (0 and 1 never block).
    ///
    /// ```
    /// static PHASE: corun_sync::sync::Barrier = corun_sync::sync::Barrier::new(1);
    /// PHASE.wait();
    /// ```
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: SpinLock::new(State {
                arrived: 0,
                generation: 0,
                waiters: List::new(),
            }),
        }
    }

    /// Waits until `n` parties have called `wait` in this generation.
    /// A yield point.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let b = Arc::new(corun_sync::sync::Barrier::new(4));
    /// let arrived = Arc::new(AtomicUsize::new(0));
    /// let hs: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let (b, arrived) = (b.clone(), arrived.clone());
    ///         corun_runtime::spawn(move || {
    ///             arrived.fetch_add(1, Ordering::SeqCst);
    ///             b.wait(); // parks until all 4 are here
    ///             assert_eq!(arrived.load(Ordering::SeqCst), 4);
    ///         })
    ///     })
    ///     .collect();
    /// hs.into_iter().for_each(|h| h.join().unwrap());
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        yield_point();
        let w = Waiter::new(0);
        let mut s = self.state.lock();
        s.arrived += 1;
        if s.arrived < self.n {
            // SAFETY: `w` stays in this frame until woken; only this
            // generation's leader unlinks it, and then wakes it.
            unsafe { s.waiters.push(&w, false) };
            drop(s);
            w.wait(WaitReason::Barrier);
            BarrierWaitResult(false)
        } else {
            s.arrived = 0;
            s.generation = s.generation.wrapping_add(1);
            let chain = s.waiters.take_all();
            drop(s);
            chain.wake_all();
            BarrierWaitResult(true)
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .field("arrived", &s.arrived)
            .field("generation", &s.generation)
            .finish()
    }
}
