//! ErrGroup: first error wins and cancels the context, the limit bounds
//! concurrency, panics reach wait, groups are reusable.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{both, within};
use corun_sync::context::{Context, ContextError, ErrGroup};

#[test]
fn first_error_wins_and_cancels() {
    within(Duration::from_secs(30), || {
        both(|| {
            let (g, ctx) = ErrGroup::<usize>::with_context(&Context::background());
            let stopped = Arc::new(AtomicUsize::new(0));
            for i in 0..50 {
                let (ctx, stopped) = (ctx.clone(), stopped.clone());
                g.go(move || {
                    if i == 7 {
                        return Err(7);
                    }
                    // Everyone else runs until cancelled.
                    let _ = ctx.done().recv();
                    assert_eq!(ctx.err(), Some(ContextError::Canceled));
                    stopped.fetch_add(1, Ordering::SeqCst);
                    if i % 10 == 0 { Err(100 + i) } else { Ok(()) }
                });
            }
            assert_eq!(g.wait(), Err(7));
            assert_eq!(stopped.load(Ordering::SeqCst), 49);
            // Reusable: a fresh round with no errors.
            g.go(|| Ok(()));
            assert_eq!(g.wait(), Ok(()));
        })
    });
}

#[test]
fn wait_cancels_context_even_without_errors() {
    both(|| {
        let (g, ctx) = ErrGroup::<()>::with_context(&Context::background());
        for _ in 0..10 {
            g.go(|| Ok(()));
        }
        assert_eq!(g.wait(), Ok(()));
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
        // A plain group has no context and works the same.
        let g = ErrGroup::<String>::new();
        g.go(|| Err("a".into()));
        assert_eq!(g.wait(), Err("a".to_string()));
    });
}

#[test]
fn limit_bounds_concurrency() {
    within(Duration::from_secs(30), || {
        both(|| {
            let g = ErrGroup::<()>::new();
            g.set_limit(3);
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicUsize::new(0));
            for _ in 0..60 {
                let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
                g.go(move || {
                    let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    corun_runtime::sleep(Duration::from_millis(1));
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
            }
            g.wait().unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 60);
            let peak = peak.load(Ordering::SeqCst);
            assert!((1..=3).contains(&peak), "peak {peak} with a limit of 3");
        })
    });
}

#[test]
fn try_go_respects_limit() {
    both(|| {
        let g = ErrGroup::<()>::new();
        g.set_limit(1);
        let (tx, rx) = corun_sync::chan::bounded::<()>(0);
        assert!(g.try_go(move || {
            let _ = rx.recv();
            Ok(())
        }));
        assert!(!g.try_go(|| Ok(())), "the only slot is taken");
        drop(tx);
        g.wait().unwrap();
        assert!(g.try_go(|| Ok(())));
        g.wait().unwrap();
        g.set_limit(usize::MAX);
        for _ in 0..100 {
            assert!(g.try_go(|| Ok(())));
        }
        g.wait().unwrap();
    });
}

#[test]
fn panics_reach_wait() {
    both(|| {
        let (g, ctx) = ErrGroup::<()>::with_context(&Context::background());
        g.go(|| panic!("task panicked"));
        g.go(|| Ok(()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.wait()));
        let p = r.unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"task panicked"));
        assert!(ctx.err().is_some());
    });
}

#[test]
#[should_panic(expected = "errgroup: modify limit while 1 tasks")]
fn set_limit_while_a_limited_task_runs_panics() {
    let g = ErrGroup::<()>::new();
    g.set_limit(3);
    let (tx, rx) = corun_sync::chan::bounded::<()>(0);
    g.go(move || {
        let _ = rx.recv();
        Ok(())
    });
    let _unblock = tx;
    g.set_limit(2);
}

#[test]
fn a_limit_can_be_set_after_unlimited_tasks_started() {
    // Go's SetLimit counts only the slots of the limit it replaces: tasks
    // started with no limit hold none, so setting one is allowed, and it
    // bounds only the tasks started after it.
    both(|| {
        let g = ErrGroup::<()>::new();
        let (tx, rx) = corun_sync::chan::bounded::<()>(0);
        for _ in 0..2 {
            let rx = rx.clone();
            g.go(move || {
                let _ = rx.recv();
                Ok(())
            });
        }
        g.set_limit(1);
        assert!(
            g.try_go(move || {
                let _ = rx.recv();
                Ok(())
            }),
            "the unlimited tasks hold no slot"
        );
        assert!(!g.try_go(|| Ok(())), "the new limit's one slot is taken");
        drop(tx);
        g.wait().unwrap();
    });
}
