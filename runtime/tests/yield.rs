//! `yield_now` alone on a worker: the scheduler may run the yielder again
//! without queueing it, but only when nothing else could run. Everything
//! that `find_runnable` would have picked instead must still get its turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{Runtime, go};

/// Yields until `flag` is set, with a generous liveness bound.
fn yield_until(flag: &AtomicBool) -> u64 {
    let start = Instant::now();
    let mut yields = 0;
    while !flag.load(Ordering::Acquire) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "starved after {yields} yields"
        );
        corun_runtime::yield_now();
        yields += 1;
    }
    yields
}

#[test]
fn a_coroutine_spawned_from_a_thread_runs_beside_a_lone_yielder() {
    let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let yielder = rt.spawn(move || yield_until(&f));
    // From a plain thread: the task goes to the global queue, which the
    // yielder's worker looks at every 61st round.
    let f = flag.clone();
    let setter = rt.spawn(move || f.store(true, Ordering::Release));
    setter.join().unwrap();
    assert!(yielder.join().unwrap() >= 1);
}

#[test]
fn a_timer_fires_beside_a_lone_yielder() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let sleeper = go!(move || {
            corun_runtime::sleep(Duration::from_millis(5));
            f.store(true, Ordering::Release);
        });
        yield_until(&flag);
        sleeper.join().unwrap();
    });
}

#[test]
fn yielders_on_one_worker_take_turns() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let turns = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..2u64)
            .map(|me| {
                let turns = turns.clone();
                go!(move || {
                    // Strict alternation: each waits for the other's turn,
                    // which only a real switch can give it.
                    for round in 0..1_000u64 {
                        while turns.load(Ordering::Acquire) != 2 * round + me {
                            corun_runtime::yield_now();
                        }
                        turns.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(turns.load(Ordering::Acquire), 2_000);
    });
}
