//! `tick`: a channel that delivers a message every period.
//!
//! The state is the next delivery time. Receiving a due tick moves it to
//! `now + period`, so ticks missed by a slow receiver are dropped rather
//! than queued (as in Go's `time.Ticker` and crossbeam-channel's `tick`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, yield_point};

use super::err::{RecvTimeoutError, TryRecvError};
use super::sleep_until;

pub(crate) struct Tick {
    base: Instant,
    /// Next delivery, in nanoseconds since `base`.
    next: AtomicU64,
    period: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Tick {
    pub(crate) fn new(period: Duration) -> Tick {
        let period = nanos(period);
        Tick {
            base: Instant::now(),
            next: AtomicU64::new(period),
            period,
        }
    }

    fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }

    fn at(&self, n: u64) -> Instant {
        self.base + Duration::from_nanos(n)
    }

    pub(crate) fn try_take(&self) -> Option<Instant> {
        loop {
            let next = self.next.load(Ordering::Acquire);
            let now = self.now();
            if now < next {
                return None;
            }
            let after = now.saturating_add(self.period);
            if self
                .next
                .compare_exchange(next, after, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(self.at(next));
            }
        }
    }

    pub(crate) fn try_recv(&self) -> Result<Instant, TryRecvError> {
        yield_point();
        self.try_take().ok_or(TryRecvError::Empty)
    }

    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Instant, RecvTimeoutError> {
        yield_point();
        loop {
            let next = self.next.load(Ordering::Acquire);
            let when = self.at(next);
            if let Some(d) = deadline
                && d < when
            {
                sleep_until(d, WaitReason::ChanReceive);
                return Err(RecvTimeoutError::Timeout);
            }
            let after = next.max(self.now()).saturating_add(self.period);
            if self
                .next
                .compare_exchange(next, after, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                sleep_until(when, WaitReason::ChanReceive);
                return Ok(when);
            }
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.now() >= self.next.load(Ordering::Acquire)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        Some(self.at(self.next.load(Ordering::Acquire)))
    }
}
