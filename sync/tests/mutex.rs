//! Mutex: exclusion under heavy coroutine contention, threads and
//! coroutines on one lock, starvation hand-off, poisoning, std's API.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::Duration;

use common::{both, spawn, within};
use corun_sync::sync::Mutex;

/// 1,000 coroutines x 10,000 increments of a non-atomic counter: the total
/// is exact only if no two holders ever overlap. (1,000 increments each in
/// unoptimised builds, where 10^7 locks take ~45 s on a busy 2-core box.)
#[test]
fn thousand_coroutines_exact_count() {
    within(Duration::from_secs(50), || {
        corun_runtime::run(|| {
            const N: u64 = 1_000;
            const K: u64 = if cfg!(debug_assertions) {
                1_000
            } else {
                10_000
            };
            let m = Arc::new(Mutex::new(0u64));
            let hs: Vec<_> = (0..N)
                .map(|_| {
                    let m = m.clone();
                    corun_runtime::spawn(move || {
                        for _ in 0..K {
                            let mut g = m.lock().unwrap();
                            // Read-modify-write in two steps so a broken
                            // lock loses increments.
                            let v = *g;
                            std::hint::black_box(&mut *g);
                            *g = v + 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock().unwrap(), N * K);
        })
    });
}

/// OS threads and coroutines contend for one lock, guarding a pair that
/// must stay equal.
#[test]
fn threads_and_coroutines_share_a_lock() {
    within(Duration::from_secs(50), || {
        let m = Arc::new(Mutex::new((0u64, 0u64)));
        let mut joins = Vec::new();
        for i in 0..16 {
            let m = m.clone();
            joins.push(spawn(i % 2 == 0, move || {
                for _ in 0..20_000 {
                    let mut g = m.lock().unwrap();
                    assert_eq!(g.0, g.1);
                    g.0 += 1;
                    std::hint::spin_loop();
                    g.1 += 1;
                }
            }));
        }
        for j in joins {
            j();
        }
        assert_eq!(*m.lock().unwrap(), (320_000, 320_000));
    });
}

/// A hog holds the mutex almost all the time (it sleeps with it locked and
/// relocks at once); a waiter must still get it 10 times. Without Go's
/// hand-off (after 1 ms of waiting the lock is given to the waiter) the
/// hog, already running when it unlocks, wins practically every race.
#[test]
fn starved_waiter_gets_the_lock() {
    for (hog_coro, waiter_coro) in [(false, false), (true, true), (true, false), (false, true)] {
        within(Duration::from_secs(20), move || {
            let m = Arc::new(Mutex::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicBool::new(false));
            let hog = {
                let (m, stop, started) = (m.clone(), stop.clone(), started.clone());
                spawn(hog_coro, move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let mut g = m.lock().unwrap();
                        started.store(true, Ordering::Relaxed);
                        *g += 1;
                        corun_runtime::sleep(Duration::from_micros(100));
                        drop(g);
                        n += 1;
                    }
                    n
                })
            };
            while !started.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            let waiter = {
                let (m, stop) = (m.clone(), stop.clone());
                spawn(waiter_coro, move || {
                    for _ in 0..10 {
                        *m.lock().unwrap() += 1_000_000;
                        corun_runtime::sleep(Duration::from_micros(100));
                    }
                    stop.store(true, Ordering::Relaxed);
                })
            };
            waiter();
            let n = hog();
            assert_eq!(*m.lock().unwrap(), n + 10_000_000);
        });
    }
}

#[test]
fn poisoning_like_std() {
    both(|| {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = spawn(corun_runtime::is_coroutine(), move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _g = m2.lock().unwrap();
                panic!("boom");
            }))
            .is_err()
        })();
        assert!(r);
        assert!(m.is_poisoned());
        let g = m.lock().unwrap_err().into_inner();
        assert_eq!(*g, 1);
        drop(g);
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        m.clear_poison();
        assert_eq!(*m.lock().unwrap(), 1);
        let m = Arc::try_unwrap(m).unwrap();
        assert_eq!(m.into_inner().unwrap(), 1);
    });
}

#[test]
fn try_lock_get_mut_and_debug() {
    both(|| {
        let mut m = Mutex::new(vec![1]);
        m.get_mut().unwrap().push(2);
        {
            let g = m.lock().unwrap();
            assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
            assert!(format!("{m:?}").contains("<locked>"));
            assert_eq!(*g, [1, 2]);
        }
        assert_eq!(format!("{m:?}"), "Mutex { data: [1, 2], poisoned: false }");
        let unsized_: &Mutex<[i32]> = &Mutex::new([1, 2, 3]);
        assert_eq!(unsized_.lock().unwrap().len(), 3);
    });
}

/// A guard held across a park (here a sleep) while the coroutine may move
/// between threads, and a waiter parked meanwhile.
#[test]
fn guard_held_across_park() {
    within(Duration::from_secs(20), || {
        corun_runtime::run(|| {
            let m = Arc::new(Mutex::new(0));
            let order = Arc::new(AtomicU64::new(0));
            let g = m.lock().unwrap();
            let h = {
                let (m, order) = (m.clone(), order.clone());
                corun_runtime::spawn(move || {
                    let mut g = m.lock().unwrap();
                    assert_eq!(order.load(Ordering::SeqCst), 1, "locked while held");
                    *g += 1;
                })
            };
            corun_runtime::sleep(Duration::from_millis(20));
            order.store(1, Ordering::SeqCst);
            drop(g);
            h.join().unwrap();
            assert_eq!(*m.lock().unwrap(), 1);
        })
    });
}

/// Locks a held gate in its destructor: parks while its coroutine unwinds.
struct ParkOnDrop(Arc<Mutex<()>>);

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        let _g = self.0.lock();
    }
}

/// Spawns A: it panics, and its destructor waits for `gate` (held by the
/// caller) while it unwinds.
fn panic_and_wait_in_a_destructor(gate: &Arc<Mutex<()>>) -> corun_runtime::JoinHandle<()> {
    let gate = gate.clone();
    corun_runtime::spawn(move || {
        let _d = ParkOnDrop(gate);
        panic!("A unwinds and waits in a destructor");
    })
}

/// Runs `f` in a coroutine of a fresh one-worker runtime, within 30 s.
fn on_one_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    within(Duration::from_secs(30), || {
        let rt = corun_runtime::Runtime::builder()
            .workers(1)
            .build()
            .unwrap();
        rt.block_on(f)
    })
}

/// Poisoning follows `thread::panicking()`, which std counts per OS thread.
/// A coroutine parked in the middle of unwinding must not lend its panic
/// to the coroutines that run on its worker meanwhile: B never panics,
/// so the lock it held across A's panic is not poisoned.
#[test]
fn a_coroutine_parked_mid_unwind_poisons_nobody_elses_lock() {
    let poisoned = on_one_worker(|| {
        let m = Arc::new(Mutex::new(0u32));
        let gate = Arc::new(Mutex::new(()));
        let gate_guard = gate.lock().unwrap();
        let b = {
            let m = m.clone();
            corun_runtime::spawn(move || {
                let g = m.lock().unwrap();
                corun_runtime::sleep(Duration::from_millis(30));
                drop(g);
            })
        };
        corun_runtime::sleep(Duration::from_millis(5)); // B holds m
        let a = panic_and_wait_in_a_destructor(&gate);
        b.join().unwrap();
        let poisoned = m.is_poisoned();
        drop(gate_guard);
        assert!(a.join().is_err());
        poisoned
    });
    assert!(!poisoned, "poisoned although nobody panicked holding it");
}

/// The other way round: C panics holding a lock while A waits mid-unwind
/// on the same worker; the lock must be poisoned, as std's would be.
#[test]
fn a_coroutine_parked_mid_unwind_hides_nobody_elses_panic() {
    let poisoned = on_one_worker(|| {
        let m = Arc::new(Mutex::new(0u32));
        let gate = Arc::new(Mutex::new(()));
        let gate_guard = gate.lock().unwrap();
        let a = panic_and_wait_in_a_destructor(&gate);
        corun_runtime::sleep(Duration::from_millis(5)); // A waits mid-unwind
        let c = {
            let m = m.clone();
            corun_runtime::spawn(move || {
                let _g = m.lock().unwrap();
                panic!("C panics holding m");
            })
        };
        assert!(c.join().is_err());
        let poisoned = m.is_poisoned();
        drop(gate_guard);
        assert!(a.join().is_err());
        poisoned
    });
    assert!(poisoned, "a panic while holding the lock did not poison it");
}

/// A coroutine that waits while unwinding finishes unwinding on the thread
/// it started on, so std's per-thread count of panics stays balanced on
/// every worker: afterwards "lock, then panic" poisons wherever it runs.
#[test]
fn unwinding_never_moves_to_another_worker() {
    use std::thread::ThreadId;
    type Seen = Arc<std::sync::Mutex<(Option<ThreadId>, Option<ThreadId>)>>;
    struct Record(Arc<Mutex<()>>, Seen);
    impl Drop for Record {
        fn drop(&mut self) {
            self.1.lock().unwrap().0 = Some(std::thread::current().id());
            let _g = self.0.lock();
            self.1.lock().unwrap().1 = Some(std::thread::current().id());
        }
    }
    within(Duration::from_secs(60), || {
        let rt = corun_runtime::Runtime::builder()
            .workers(2)
            .build()
            .unwrap();
        rt.block_on(|| {
            for round in 0..50 {
                let gate = Arc::new(Mutex::new(()));
                let gate_guard = gate.lock().unwrap();
                let seen: Seen = Default::default();
                let a = {
                    let (gate, seen) = (gate.clone(), seen.clone());
                    corun_runtime::spawn(move || {
                        let _d = Record(gate, seen);
                        panic!("A");
                    })
                };
                corun_runtime::sleep(Duration::from_millis(2));
                // Keep this worker busy while A is woken, inviting a move.
                let stop = Arc::new(AtomicBool::new(false));
                let spinner = {
                    let stop = stop.clone();
                    corun_runtime::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                };
                drop(gate_guard);
                assert!(a.join().is_err());
                stop.store(true, Ordering::Relaxed);
                spinner.join().unwrap();
                let (before, after) = *seen.lock().unwrap();
                assert_eq!(before, after, "round {round}: unwinding changed threads");
            }
            for probe in 0..200 {
                let poisoned = corun_runtime::spawn(|| {
                    let m = Mutex::new(0);
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let _g = m.lock().unwrap();
                        panic!("probe");
                    }));
                    m.is_poisoned()
                })
                .join()
                .unwrap();
                assert!(
                    poisoned,
                    "probe {probe}: a panic holding the lock did not poison it"
                );
            }
        });
    });
}
