//! Barrier generations and leaders; Once and OnceLock under contention,
//! poisoning and retry.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{both, spawn, within};
use corun_sync::sync::{Barrier, Once, OnceLock};

/// 8 parties (coroutines and threads) pass 200 generations; in each, all
/// must have arrived before any leaves, and exactly one leads.
#[test]
fn barrier_generations() {
    within(Duration::from_secs(30), || {
        const N: usize = 8;
        const ROUNDS: usize = 200;
        let b = Arc::new(Barrier::new(N));
        let arrived = Arc::new(AtomicUsize::new(0));
        let leaders = Arc::new(AtomicUsize::new(0));
        let joins: Vec<_> = (0..N)
            .map(|i| {
                let (b, arrived, leaders) = (b.clone(), arrived.clone(), leaders.clone());
                spawn(i % 2 == 0, move || {
                    for round in 0..ROUNDS {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        let r = b.wait();
                        // Nobody of the next round can have arrived yet
                        // before all of this round did.
                        assert!(arrived.load(Ordering::SeqCst) >= (round + 1) * N);
                        if r.is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                        }
                        // Second barrier: keeps rounds from overlapping the
                        // check above.
                        b.wait();
                    }
                })
            })
            .collect();
        for j in joins {
            j();
        }
        assert_eq!(leaders.load(Ordering::SeqCst), ROUNDS);
    });
}

#[test]
fn barrier_of_one_never_blocks() {
    both(|| {
        let b = Barrier::new(1);
        assert!(b.wait().is_leader());
        assert!(b.wait().is_leader());
        assert!(Barrier::new(0).wait().is_leader());
    });
}

/// 500 coroutines and 8 threads race on one Once whose closure parks; it
/// runs once and nobody returns before it finished.
#[test]
fn once_under_contention() {
    within(Duration::from_secs(30), || {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let joins: Vec<_> = (0..508)
            .map(|i| {
                let (once, runs, finished) = (once.clone(), runs.clone(), finished.clone());
                spawn(i >= 8, move || {
                    once.call_once(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        common::sleep_ms(20);
                        finished.store(1, Ordering::SeqCst);
                    });
                    assert_eq!(finished.load(Ordering::SeqCst), 1, "returned early");
                    assert!(once.is_completed());
                })
            })
            .collect();
        for j in joins {
            j();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn once_poisoning_and_force() {
    both(|| {
        let once = Once::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            once.call_once(|| panic!("init fails"));
        }));
        assert!(r.is_err());
        assert!(!once.is_completed());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            once.call_once(|| unreachable!("poisoned: must not run"));
        }));
        assert!(r.is_err(), "call_once on a poisoned Once panics");
        let mut saw_poison = false;
        once.call_once_force(|st| saw_poison = st.is_poisoned());
        assert!(saw_poison);
        assert!(once.is_completed());
        once.wait();
        once.call_once_force(|_| unreachable!("completed"));
    });
}

#[test]
fn once_lock_races_and_retries() {
    within(Duration::from_secs(30), || {
        let cell = Arc::new(OnceLock::<usize>::new());
        let attempts = Arc::new(AtomicUsize::new(0));
        // A waiter parked in wait() before anyone initialises.
        let waiter = {
            let cell = cell.clone();
            spawn(true, move || *cell.wait())
        };
        let joins: Vec<_> = (0..200)
            .map(|i| {
                let (cell, attempts) = (cell.clone(), attempts.clone());
                spawn(i % 25 != 0, move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        *cell.get_or_init(|| {
                            // The first initialiser panics; the cell stays
                            // empty and a later caller initialises it.
                            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                                common::sleep_ms(5);
                                panic!("first init fails");
                            }
                            common::sleep_ms(5);
                            i + 1000
                        })
                    }))
                    .ok()
                })
            })
            .collect();
        let vals: Vec<_> = joins.into_iter().filter_map(|j| j()).collect();
        let v = *cell.get().unwrap();
        assert!(v >= 1000);
        assert_eq!(vals.len(), 199, "all but the panicking one got a value");
        assert!(vals.iter().all(|&x| x == v));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(waiter(), v);
        assert_eq!(cell.set(1), Err(1));
    });
}

#[test]
fn once_lock_api() {
    both(|| {
        let mut c = OnceLock::new();
        assert_eq!(format!("{c:?}"), "OnceLock(<uninit>)");
        assert!(c.get_mut().is_none());
        assert_eq!(c.set(String::from("a")), Ok(()));
        c.get_mut().unwrap().push('b');
        assert_eq!(c.clone().get().map(String::as_str), Some("ab"));
        assert_eq!(c, OnceLock::from("ab".to_string()));
        assert_eq!(c.take().as_deref(), Some("ab"));
        assert!(c.get().is_none());
        assert_eq!(*c.get_or_init(|| "c".into()), "c");
        assert_eq!(c.into_inner().as_deref(), Some("c"));
        // Drops the value exactly once.
        let rc = Arc::new(());
        let c = OnceLock::from(rc.clone());
        assert_eq!(Arc::strong_count(&rc), 2);
        drop(c);
        assert_eq!(Arc::strong_count(&rc), 1);
    });
}
