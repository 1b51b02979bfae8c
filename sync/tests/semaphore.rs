//! Semaphore: permit counts against a model under proptest, FIFO hand-off
//! to waiters, time-outs, and a bound on concurrency.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{both, eventually, not_early, spawn, within};
use corun_sync::sync::{Semaphore, SemaphorePermit};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    TryAcquire(usize),
    Release(usize),
    Add(usize),
    Forget(usize),
    AcquireReady(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..5).prop_map(Op::TryAcquire),
        (0usize..8).prop_map(Op::Release),
        (0usize..4).prop_map(Op::Add),
        (0usize..4).prop_map(Op::Forget),
        (0usize..3).prop_map(Op::AcquireReady),
    ]
}

/// Runs `ops` on a semaphore and on a plain counter; they must agree.
fn check(init: usize, ops: &[Op]) {
    let sem = Semaphore::new(init);
    let mut model = init;
    let mut held: Vec<SemaphorePermit<'_>> = Vec::new();
    for op in ops {
        match *op {
            Op::TryAcquire(n) => {
                let p = sem.try_acquire_many(n);
                assert_eq!(
                    p.is_some(),
                    model >= n,
                    "try_acquire_many({n}) with {model}"
                );
                if let Some(p) = p {
                    assert_eq!(p.num_permits(), n);
                    model -= n;
                    held.push(p);
                }
            }
            Op::Release(i) => {
                if !held.is_empty() {
                    let p = held.swap_remove(i % held.len());
                    model += p.num_permits();
                }
            }
            Op::Add(n) => {
                sem.add_permits(n);
                model += n;
            }
            Op::Forget(n) => {
                let k = sem.forget_permits(n);
                assert_eq!(k, n.min(model));
                model -= k;
            }
            Op::AcquireReady(n) => {
                // Blocking acquire only when it cannot block.
                if model >= n {
                    held.push(sem.acquire_many(n));
                    model -= n;
                }
            }
        }
        assert_eq!(sem.available_permits(), model);
    }
    let total: usize = held.iter().map(|p| p.num_permits()).sum();
    drop(held);
    assert_eq!(sem.available_permits(), model + total);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn counts_match_model_on_a_thread(init in 0usize..6, ops in proptest::collection::vec(op(), 0..60)) {
        check(init, &ops);
    }

    #[test]
    fn counts_match_model_in_a_coroutine(init in 0usize..6, ops in proptest::collection::vec(op(), 0..60)) {
        corun_runtime::run(move || check(init, &ops));
    }
}

/// Coroutines named `name` parked on a semaphore.
fn parked(name: &str) -> usize {
    corun_runtime::coroutines()
        .iter()
        .filter(|c| {
            c.wait_reason == corun_runtime::WaitReason::Semaphore && c.name.as_deref() == Some(name)
        })
        .count()
}

/// Waiters are served in order, and a large request blocks later small
/// ones until it is satisfied.
#[test]
fn fifo_handoff() {
    both(|| {
        let name = format!("fifo-{}", corun_runtime::is_coroutine());
        let sem = Arc::new(Semaphore::new(0));
        let order = Arc::new(corun_sync::sync::Mutex::new(Vec::new()));
        let mut joins = Vec::new();
        for (i, want) in [(0usize, 1usize), (1, 3), (2, 1)] {
            let (sem, order) = (sem.clone(), order.clone());
            joins.push(
                corun_runtime::Builder::new()
                    .name(name.clone())
                    .spawn(move || {
                        let p = sem.acquire_many(want);
                        order.lock().unwrap().push(i);
                        p.forget();
                    })
                    .unwrap(),
            );
            // Let it queue before the next one.
            eventually(|| parked(&name) == i + 1);
        }
        sem.add_permits(2); // serves 0; 1 wants 3, so 2 must wait behind it
        eventually(|| order.lock().unwrap().len() == 1);
        common::sleep_ms(20);
        assert_eq!(*order.lock().unwrap(), [0], "served out of order");
        assert_eq!(sem.available_permits(), 1);
        sem.add_permits(3); // serves 1 (3 of 4); 2 takes the last one
        for j in joins {
            j.join().unwrap();
        }
        // 1 and 2 were served by one add and may record in either order.
        let mut got = order.lock().unwrap().clone();
        got[1..].sort();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(sem.available_permits(), 0);
    });
}

#[test]
fn acquire_timeout() {
    both(|| {
        let sem = Semaphore::new(1);
        let p = sem.acquire();
        let start = Instant::now();
        assert!(sem.acquire_timeout(Duration::from_millis(20)).is_none());
        not_early(start, Duration::from_millis(20));
        drop(p);
        assert!(sem.acquire_timeout(Duration::from_millis(20)).is_some());
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A semaphore of 3 bounds 200 workers (threads and coroutines) to 3 at a
/// time, and every one gets through.
#[test]
fn bounds_concurrency() {
    within(Duration::from_secs(30), || {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let joins: Vec<_> = (0..200)
            .map(|i| {
                let (sem, inside, done) = (sem.clone(), inside.clone(), done.clone());
                spawn(i % 10 != 0, move || {
                    for _ in 0..20 {
                        let _p = sem.clone().acquire_owned();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(n <= 3, "{n} holders of 3 permits");
                        corun_runtime::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for j in joins {
            j();
        }
        assert_eq!(done.load(Ordering::SeqCst), 200);
        assert_eq!(sem.available_permits(), 3);
    });
}
