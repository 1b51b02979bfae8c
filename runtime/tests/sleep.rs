//! Sleeping: never early, in order, many at once, from threads too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corun_runtime::{Runtime, go};

#[test]
fn sleep_never_wakes_early() {
    let hs: Vec<_> = (0..200u64)
        .map(|i| {
            go!(move || {
                let d = Duration::from_micros(100 + (i * 97) % 5000);
                let t = Instant::now();
                corun_runtime::sleep(d);
                assert!(t.elapsed() >= d, "woke early: {:?} < {d:?}", t.elapsed());
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let t = Instant::now();
    corun_runtime::sleep(Duration::from_millis(3));
    assert!(t.elapsed() >= Duration::from_millis(3));
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    rt.block_on(move || {
        // Deadlines from one instant taken before any spawn: a coroutine that
        // starts late (other tests load the machine) still has the deadline
        // its offset names, so the order checked is the timers', not the
        // order in which the sleepers happened to begin.
        let base = Instant::now();
        let hs: Vec<_> = [50u64, 10, 90, 30, 70]
            .into_iter()
            .map(|ms| {
                let o = o.clone();
                go!(move || {
                    corun_runtime::sleep_until(base + Duration::from_millis(ms));
                    o.lock().unwrap().push(ms);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    // 20 ms apart: ordering is a liveness property even on a loaded machine.
    assert_eq!(*order.lock().unwrap(), vec![10, 30, 50, 70, 90]);
}

#[test]
fn hundred_thousand_sleepers() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = Instant::now();
    let n = rt.block_on(|| {
        let hs: Vec<_> = (0..100_000)
            .map(|_| {
                go!(|| {
                    let t = Instant::now();
                    corun_runtime::sleep(Duration::from_millis(10));
                    t.elapsed() >= Duration::from_millis(10)
                })
            })
            .collect();
        hs.into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    eprintln!("100k sleepers of 10 ms: {:?}", t.elapsed());
    assert_eq!(n, 100_000);
}

#[test]
fn zero_and_huge_sleeps() {
    go!(|| corun_runtime::sleep(Duration::ZERO)).join().unwrap();
    // A sleep whose deadline overflows Instant parks "forever": it must not
    // return; check it is still parked after a while, then leave it.
    let h = go!(|| corun_runtime::sleep(Duration::MAX));
    std::thread::sleep(Duration::from_millis(20));
    assert!(!h.is_finished());
}
