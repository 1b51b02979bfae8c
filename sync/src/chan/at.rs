//! `at` / `after`: a channel that delivers one message at a deadline.
//!
//! Nothing is registered with the runtime: the deadline is the state. A
//! blocking receive parks until it with `park_deadline`, and a select
//! includes it in its own wake-up deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use corun_runtime::{WaitReason, yield_point};

use super::err::{RecvTimeoutError, TryRecvError};
use super::sleep_until;

pub(crate) struct At {
    when: Instant,
    taken: AtomicBool,
}

impl At {
    pub(crate) fn new(when: Instant) -> At {
        At {
            when,
            taken: AtomicBool::new(false),
        }
    }

    pub(crate) fn try_recv(&self) -> Result<Instant, TryRecvError> {
        yield_point();
        if self.is_ready() && !self.taken.swap(true, Ordering::AcqRel) {
            Ok(self.when)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Instant, RecvTimeoutError> {
        yield_point();
        if !self.taken.load(Ordering::Acquire) {
            if let Some(d) = deadline
                && d < self.when
            {
                sleep_until(d, WaitReason::ChanReceive);
                return Err(RecvTimeoutError::Timeout);
            }
            sleep_until(self.when, WaitReason::ChanReceive);
            if !self.taken.swap(true, Ordering::AcqRel) {
                return Ok(self.when);
            }
        }
        // Delivered already: nothing will ever come again.
        super::wait_forever_or(deadline, WaitReason::ChanReceive);
        Err(RecvTimeoutError::Timeout)
    }

    pub(crate) fn is_ready(&self) -> bool {
        !self.taken.load(Ordering::Acquire) && Instant::now() >= self.when
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.is_ready())
    }

    /// Select: takes the message if due.
    pub(crate) fn try_take(&self) -> Option<Instant> {
        (self.is_ready() && !self.taken.swap(true, Ordering::AcqRel)).then_some(self.when)
    }

    /// Select: a selected but abandoned receive puts the message back.
    pub(crate) fn untake(&self) {
        self.taken.store(false, Ordering::Release);
    }

    /// When a select waiting on this should wake up.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (!self.taken.load(Ordering::Acquire)).then_some(self.when)
    }
}
