//! A stuck worker does not stop the others: blocking() hand-off, plain
//! blocking calls and spinning loops on a one-worker runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{Runtime, go};

/// Runs `stuck` on a one-worker runtime alongside a ticker coroutine and
/// returns how many ticks the ticker made while `stuck` ran.
fn ticks_during(stuck: fn()) -> u64 {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (t2, s2) = (ticks.clone(), stop.clone());
    let ticker = rt.spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            t2.fetch_add(1, Ordering::Relaxed);
            corun_runtime::sleep(Duration::from_millis(1));
        }
    });
    // Let the ticker start, then block the only worker.
    std::thread::sleep(Duration::from_millis(20));
    let before = ticks.load(Ordering::Relaxed);
    rt.spawn(stuck).join().unwrap();
    let during = ticks.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    during
}

#[test]
fn blocking_call_hands_the_worker_on() {
    let n =
        ticks_during(|| corun_runtime::blocking(|| std::thread::sleep(Duration::from_millis(500))));
    assert!(n >= 50, "ticker ran only {n} times in 500 ms");
}

#[test]
fn plain_thread_sleep_in_a_coroutine_is_handed_off() {
    let n = ticks_during(|| std::thread::sleep(Duration::from_millis(500)));
    assert!(n >= 20, "ticker ran only {n} times in 500 ms");
}

#[test]
fn spinning_coroutine_does_not_starve_others() {
    let n = ticks_during(|| {
        let t = Instant::now();
        let mut x = 1u64;
        while t.elapsed() < Duration::from_millis(500) {
            x = x.wrapping_mul(3).wrapping_add(1);
        }
        std::hint::black_box(x);
    });
    assert!(n >= 20, "ticker ran only {n} times in 500 ms");
}

#[test]
fn spinning_with_yield_points_is_preempted_in_place() {
    // Many spinners on one worker: each reaches yield points, so after its
    // slice it gives way; all finish and the worker count stays bounded.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            rt.spawn(|| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(100) {
                    corun_runtime::yield_point();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(rt.stats().ms <= 4, "{:?}", rt.stats());
}

#[test]
fn blocking_returns_values_and_panics() {
    assert_eq!(go!(|| corun_runtime::blocking(|| 5)).join().unwrap(), 5);
    assert_eq!(corun_runtime::blocking(|| 6), 6);
    let r = go!(|| corun_runtime::blocking(|| panic!("inside blocking"))).join();
    assert!(r.is_err());
    assert_eq!(go!(|| 1).join().unwrap(), 1);
}

#[test]
fn many_blocking_calls_on_two_workers() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = Instant::now();
    rt.block_on(|| {
        let hs: Vec<_> = (0..40)
            .map(|_| {
                go!(|| corun_runtime::blocking(|| std::thread::sleep(Duration::from_millis(50))))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    // 40 x 50 ms on two workers would take a second without hand-off.
    eprintln!(
        "40 blocking sleeps of 50 ms: {:?}, {:?}",
        t.elapsed(),
        rt.stats()
    );
    assert!(rt.stats().handoffs > 0);
}

/// A park or yield inside `blocking()` switches away while the P is
/// marked as in a system call: the P must stay with its M (or go idle),
/// never be left marked busy with no M behind it.
#[test]
fn parking_inside_blocking_leaves_no_orphan_p() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    // The stats that showed both Ps idle, not a later reading: a late
    // `wakep` may start a spinning M that takes a P for a moment.
    let settle = || {
        let t = Instant::now();
        loop {
            let s = rt.stats();
            if s.idle_ps == 2 || t.elapsed() > Duration::from_secs(5) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for round in 0..20 {
        rt.spawn(|| corun_runtime::blocking(corun_runtime::yield_now))
            .join()
            .unwrap();
        let s = settle();
        assert_eq!(s.idle_ps, 2, "yield, round {round}: {s:?}");
        rt.spawn(|| corun_runtime::blocking(|| go!(|| ()).join().unwrap()))
            .join()
            .unwrap();
        let s = settle();
        assert_eq!(s.idle_ps, 2, "join, round {round}: {s:?}");
    }
}
