//! Context trees: cancel propagation, deadline inheritance, done channels
//! in select!, values, and no timers left behind, on threads and in
//! coroutines.

mod common;

use std::time::{Duration, Instant};

use common::{both, not_early, spawn, within};
use corun_sync::chan::{after, select};
use corun_sync::context::{Context, ContextError};

#[test]
fn cancel_propagates_down_not_up() {
    both(|| {
        let bg = Context::background();
        let (a, cancel_a) = bg.with_cancel();
        let (b, cancel_b) = a.with_value(1u8).with_cancel();
        let (c, _cancel_c) = b.with_timeout(Duration::from_secs(3600));
        let (d, _cancel_d) = a.with_cancel();
        cancel_b.cancel();
        assert_eq!(b.err(), Some(ContextError::Canceled));
        assert_eq!(c.err(), Some(ContextError::Canceled), "descendant");
        assert_eq!(a.err(), None, "not the parent");
        assert_eq!(d.err(), None, "not a sibling");
        assert!(c.done().try_recv().is_err() && b.done().recv().is_err());
        cancel_a.cancel();
        cancel_a.cancel(); // idempotent
        assert_eq!(d.err(), Some(ContextError::Canceled));
        assert_eq!(bg.err(), None);
        assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    });
}

/// A coroutine or thread blocked in select! on done() is woken by the
/// cancel of an ancestor.
#[test]
fn done_wakes_select() {
    within(Duration::from_secs(30), || {
        for coro in [false, true] {
            let (root, cancel) = Context::background().with_cancel();
            let waiters: Vec<_> = (0..20)
                .map(|i| {
                    let (ctx, _c) = root.with_value(i).with_cancel();
                    spawn(coro || i % 2 == 0, move || {
                        select! {
                            recv(ctx.done()) -> r => { assert!(r.is_err()); ctx.err() }
                            recv(after(Duration::from_secs(120))) -> _ => None,
                        }
                    })
                })
                .collect();
            common::sleep_ms(5);
            cancel.cancel();
            for w in waiters {
                assert_eq!(w(), Some(ContextError::Canceled));
            }
        }
    });
}

#[test]
fn deadlines_expire_and_inherit() {
    both(|| {
        let start = Instant::now();
        let (p, _cp) = Context::background().with_timeout(Duration::from_millis(30));
        let pd = p.deadline().unwrap();
        // A later child deadline is capped by the parent's.
        let (late, _cl) = p.with_deadline(pd + Duration::from_secs(10));
        assert_eq!(late.deadline(), Some(pd));
        // An earlier one is its own.
        let (early, _ce) = p.with_timeout(Duration::from_millis(10));
        assert!(early.deadline().unwrap() < pd);
        // Values and plain cancels inherit the deadline.
        assert_eq!(p.with_value("x").with_cancel().0.deadline(), Some(pd));
        assert_eq!(Context::background().deadline(), None);

        assert!(early.done().recv().is_err());
        assert_eq!(early.err(), Some(ContextError::DeadlineExceeded));
        not_early(start, Duration::from_millis(10));
        assert_eq!(p.err(), None, "the parent's deadline is later");
        assert!(late.done().recv().is_err());
        not_early(start, Duration::from_millis(30));
        assert_eq!(late.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(p.err(), Some(ContextError::DeadlineExceeded));
        // A deadline in the past is born expired.
        let (past, _c) = Context::background().with_deadline(Instant::now());
        assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(past.err().unwrap().to_string(), "context deadline exceeded");
    });
}

#[test]
fn values_nearest_wins() {
    both(|| {
        let ctx = Context::background()
            .with_value(1u32)
            .with_value("name")
            .with_cancel()
            .0
            .with_value(2u32);
        assert_eq!(ctx.value::<u32>(), Some(&2));
        assert_eq!(ctx.value::<&str>(), Some(&"name"));
        assert_eq!(ctx.value::<u64>(), None);
        assert_eq!(Context::background().value::<u32>(), None);
        assert!(format!("{ctx:?}").starts_with("context.Background.WithValue"));
    });
}

/// A server-like loop: 20,000 requests each with a one-hour timeout, all
/// cancelled. The runtime's timer heaps must not keep them (cancelled
/// timers are swept), whether the contexts are made on a thread or in a
/// coroutine.
#[test]
fn no_timers_left_after_cancel() {
    both(|| {
        let (root, cancel_root) = Context::background().with_cancel();
        for i in 0..20_000 {
            let (req, cancel) = root.with_timeout(Duration::from_secs(3600));
            let (_sub, _c) = req.with_value(i).with_timeout(Duration::from_secs(1800));
            cancel.cancel();
        }
        let timers = corun_runtime::stats().timers;
        // Other tests in this binary may arm a few timers of their own.
        assert!(
            timers < 2_000,
            "{timers} timer entries left after 40,000 cancels"
        );
        cancel_root.cancel();
    });
}

/// A deadline outlives the runtime it was set on: its timer moves to the
/// global runtime, and a thread waiting on `done()` is released when it
/// passes, not before.
#[test]
fn a_deadline_set_on_a_dropped_runtime_still_expires() {
    within(Duration::from_secs(30), || {
        let rt = corun_runtime::Runtime::builder()
            .workers(1)
            .build()
            .unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(1);
        let (ctx, _cancel) = rt.block_on(|| Context::background().with_deadline(deadline));
        drop(rt);
        assert!(Instant::now() < deadline, "dropping a runtime took 1 s");
        assert_eq!(ctx.err(), None);
        assert!(ctx.done().recv().is_err(), "done() is closed, not sent on");
        not_early(start, Duration::from_secs(1));
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    });
}
