//! Smoke tests: spawn, join, sleep, many coroutines.

use std::time::{Duration, Instant};

#[test]
fn spawn_join_from_thread() {
    let h = corun_runtime::spawn(|| 21 * 2);
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn nested_and_sleep() {
    let v = corun_runtime::run(|| {
        let hs: Vec<_> = (0..100u64)
            .map(|i| {
                corun_runtime::spawn(move || {
                    let t = Instant::now();
                    corun_runtime::sleep(Duration::from_millis(5));
                    assert!(t.elapsed() >= Duration::from_millis(5));
                    i
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(v, 4950);
}

#[test]
fn many() {
    let t = Instant::now();
    let n = corun_runtime::run(|| {
        let hs: Vec<_> = (0..100_000u64)
            .map(|i| corun_runtime::spawn(move || i))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    eprintln!("100k spawn+join {:?}", t.elapsed());
    assert_eq!(n, 100_000 * 99_999 / 2);
}
