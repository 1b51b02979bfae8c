//! Condvar: no lost wake-ups between producers and consumers, notify_all,
//! time-outs, on threads and in coroutines.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{both, not_early, spawn, within};
use corun_sync::sync::{Condvar, Mutex};

/// A bounded queue built from one mutex and two condvars, driven by mixed
/// producers and consumers: a lost wake-up leaves someone parked forever
/// (caught by `within`), a spurious one is absorbed by `wait_while`.
#[test]
fn no_lost_wakeups() {
    within(Duration::from_secs(50), || {
        for coro in [false, true] {
            let q = Arc::new((Mutex::new(VecDeque::new()), Condvar::new(), Condvar::new()));
            const PER: u64 = 20_000;
            let mut joins = Vec::new();
            for p in 0..4u64 {
                let q = q.clone();
                joins.push(spawn(coro || p % 2 == 0, move || {
                    let (m, not_empty, not_full) = &*q;
                    for i in 0..PER {
                        let mut g = not_full
                            .wait_while(m.lock().unwrap(), |q| q.len() >= 4)
                            .unwrap();
                        g.push_back(p * PER + i);
                        drop(g);
                        not_empty.notify_one();
                    }
                    0
                }));
            }
            for c in 0..4u64 {
                let q = q.clone();
                joins.push(spawn(coro || c % 2 == 1, move || {
                    let (m, not_empty, not_full) = &*q;
                    let mut sum = 0;
                    for _ in 0..PER {
                        let mut g = not_empty
                            .wait_while(m.lock().unwrap(), |q| q.is_empty())
                            .unwrap();
                        sum += g.pop_front().unwrap();
                        drop(g);
                        not_full.notify_one();
                    }
                    sum
                }));
            }
            let total: u64 = joins.into_iter().map(|j| j()).sum();
            let n = 4 * PER;
            assert_eq!(total, n * (n - 1) / 2);
        }
    });
}

/// notify_all wakes every waiter, including ones parked on other threads.
#[test]
fn notify_all_wakes_everyone() {
    within(Duration::from_secs(20), || {
        let s = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
        let mut joins = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            joins.push(spawn(i % 4 != 0, move || {
                let (m, cv) = &*s;
                let mut g = m.lock().unwrap();
                g.0 += 1;
                let g = cv.wait_while(g, |(_, go)| !*go).unwrap();
                assert!(g.1);
            }));
        }
        let (m, cv) = &*s;
        loop {
            let mut g = m.lock().unwrap();
            if g.0 == 40 {
                g.1 = true;
                cv.notify_all();
                break;
            }
            drop(g);
            std::thread::sleep(Duration::from_millis(1));
        }
        for j in joins {
            j();
        }
    });
}

#[test]
fn timeouts() {
    both(|| {
        let m = Mutex::new(0);
        let cv = Condvar::new();
        let start = Instant::now();
        let (g, r) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(20))
            .unwrap();
        assert!(r.timed_out());
        not_early(start, Duration::from_millis(20));
        drop(g);
        let start = Instant::now();
        let (g, r) = cv
            .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(30), |v| *v == 0)
            .unwrap();
        assert!(r.timed_out());
        assert_eq!(*g, 0);
        not_early(start, Duration::from_millis(30));
        drop(g);
        // A notification before the time-out ends the wait without one.
        let s = Arc::new((Mutex::new(false), Condvar::new()));
        let s2 = s.clone();
        let h = spawn(corun_runtime::is_coroutine(), move || {
            common::sleep_ms(10);
            *s2.0.lock().unwrap() = true;
            s2.1.notify_one();
        });
        let (g, r) =
            s.1.wait_timeout_while(s.0.lock().unwrap(), Duration::from_secs(30), |v| !*v)
                .unwrap();
        assert!(*g && !r.timed_out());
        drop(g);
        h();
        // A huge time-out does not overflow; a notification ends it.
        *s.0.lock().unwrap() = false;
        let s2 = s.clone();
        let h = spawn(corun_runtime::is_coroutine(), move || {
            common::sleep_ms(5);
            *s2.0.lock().unwrap() = true;
            s2.1.notify_all();
        });
        let (g, r) =
            s.1.wait_timeout_while(s.0.lock().unwrap(), Duration::MAX, |v| !*v)
                .unwrap();
        assert!(*g && !r.timed_out());
        drop(g);
        h();
    });
}
