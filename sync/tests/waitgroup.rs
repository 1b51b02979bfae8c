//! WaitGroup: fan-out, reuse across rounds, several waiters, Go's panic on
//! a negative counter.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{both, spawn, within};
use corun_sync::sync::WaitGroup;

#[test]
fn fan_out_and_reuse() {
    within(Duration::from_secs(30), || {
        both(|| {
            let wg = WaitGroup::new();
            let n = Arc::new(AtomicUsize::new(0));
            for round in 1..=5 {
                for i in 0..1000 {
                    wg.add(1);
                    let (wg, n) = (wg.clone(), n.clone());
                    // Mostly coroutines, some threads.
                    drop(spawn(i % 100 != 0, move || {
                        n.fetch_add(1, Ordering::SeqCst);
                        wg.done();
                    }));
                }
                wg.wait();
                assert_eq!(n.load(Ordering::SeqCst), round * 1000);
                assert_eq!(wg.count(), 0);
            }
            // A zero group does not block.
            wg.wait();
        })
    });
}

/// Several waiters, coroutines and threads, all released by the last done.
#[test]
fn many_waiters_reused() {
    within(Duration::from_secs(30), || {
        let wg = WaitGroup::new();
        for _round in 0..20 {
            wg.add(3);
            let released = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..6)
                .map(|i| {
                    let (wg, released) = (wg.clone(), released.clone());
                    spawn(i % 2 == 0, move || {
                        wg.wait();
                        released.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            common::sleep_ms(1);
            assert_eq!(released.load(Ordering::SeqCst), 0, "released before done");
            for _ in 0..3 {
                let wg = wg.clone();
                drop(corun_runtime::spawn(move || wg.done()));
            }
            for w in waiters {
                w();
            }
            assert_eq!(released.load(Ordering::SeqCst), 6);
        }
    });
}

#[test]
fn go_counts_and_survives_panics() {
    both(|| {
        let wg = WaitGroup::new();
        let n = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let n = n.clone();
            wg.go(move || {
                n.fetch_add(1, Ordering::SeqCst);
                if i == 50 {
                    panic!("worker panics; done() still runs");
                }
            });
        }
        wg.wait();
        assert_eq!(n.load(Ordering::SeqCst), 100);
    });
}

#[test]
#[should_panic(expected = "sync: negative WaitGroup counter")]
fn negative_counter_panics() {
    let wg = WaitGroup::new();
    wg.add(1);
    wg.done();
    wg.done();
}

#[test]
fn negative_counter_panics_in_a_coroutine() {
    let r = corun_runtime::spawn(|| {
        let wg = WaitGroup::new();
        wg.add(2);
        wg.add(-3);
    })
    .join();
    let msg = r.unwrap_err();
    let msg = msg
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| msg.downcast_ref::<String>().cloned())
        .unwrap();
    assert_eq!(msg, "sync: negative WaitGroup counter");
}

#[test]
fn reuse_before_a_wait_returned_panics_in_that_wait() {
    // One worker, so the woken waiter cannot run between this coroutine's
    // `done` (which ends the round and wakes it) and its `add` (which
    // starts the next round) until this coroutine joins it.
    let rt = corun_runtime::Runtime::builder()
        .workers(1)
        .build()
        .unwrap();
    let msg = rt.block_on(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        let w = wg.clone();
        let waiter = corun_runtime::spawn(move || w.wait());
        while format!("{wg:?}") != "WaitGroup { count: 1, waiters: 1 }" {
            corun_runtime::yield_now();
        }
        wg.done();
        wg.add(1);
        let msg = waiter.join().unwrap_err();
        wg.done();
        msg.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned())
            .unwrap()
    });
    assert_eq!(
        msg,
        "sync: WaitGroup is reused before previous Wait has returned"
    );
}
