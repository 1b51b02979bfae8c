//! A million coroutines: spawned and joined, then a million parked at once
//! with their memory and mapping cost measured.
//!
//! One test per binary would isolate RSS best; both live here and run one
//! after the other (`--test-threads=1` is not needed: the parked test takes
//! its baseline after the spawn test's stacks are back in the pool, and
//! measures growth only).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corun_runtime::{Runtime, WaitReason, go, park, unparker};

static SERIAL: Mutex<()> = Mutex::new(());

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn a_million_spawned_and_joined() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = Instant::now();
    let sum = rt.block_on(|| {
        let hs: Vec<_> = (0..1_000_000u64).map(|i| go!(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    eprintln!("1M spawn+join: {:?}", t.elapsed());
    assert_eq!(sum, 999_999 * 1_000_000 / 2);
    assert_eq!(rt.stats().coroutines, 0);
}

#[test]
fn a_million_parked_at_once() {
    const N: usize = 1_000_000;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let unparkers = Arc::new(Mutex::new(Vec::with_capacity(N)));
    let (maps0, rss0) = (maps(), rss_bytes());
    let t = Instant::now();
    let hs: Vec<_> = {
        let (stop, unparkers) = (stop.clone(), unparkers.clone());
        rt.block_on(move || {
            (0..N)
                .map(|_| {
                    let (stop, unparkers) = (stop.clone(), unparkers.clone());
                    go!(move || {
                        unparkers.lock().unwrap().push(unparker());
                        while !stop.load(Ordering::Acquire) {
                            park(WaitReason::Park);
                        }
                    })
                })
                .collect()
        })
    };
    while unparkers.lock().unwrap().len() < N {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "coroutines did not all park"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = rt.stats();
    let (maps1, rss1) = (maps(), rss_bytes());
    // Exclude what the test itself holds: handles and unparkers.
    let test_bytes = N * (std::mem::size_of::<corun_runtime::JoinHandle<()>>() + 16);
    let per = (rss1 - rss0).saturating_sub(test_bytes) / N;
    eprintln!(
        "1M parked in {:?}: {per} B RSS per coroutine, maps {maps0} -> {maps1}, waiting={}",
        t.elapsed(),
        s.waiting
    );
    assert!(s.waiting >= N - 10, "{s:?}");
    assert!(per < 6 * 1024, "{per} bytes per parked coroutine");
    assert!(maps1 - maps0 < 300, "maps grew from {maps0} to {maps1}");
    stop.store(true, Ordering::Release);
    for u in unparkers.lock().unwrap().drain(..) {
        u.unpark();
    }
    for h in hs {
        h.join().unwrap();
    }
}
