//! RwLock: readers share, writers exclude, a stream of readers does not
//! starve a writer, poisoning and std's API.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::Duration;

use common::{both, spawn, within};
use corun_sync::sync::RwLock;

/// Writers keep two fields equal; readers (threads and coroutines) must
/// never see them differ, and the writes must all land.
#[test]
fn readers_see_consistent_writes() {
    within(Duration::from_secs(40), || {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let max_readers = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let mut joins = Vec::new();
        for i in 0..12 {
            let (l, max_readers, inside) = (l.clone(), max_readers.clone(), inside.clone());
            joins.push(spawn(i % 3 != 0, move || {
                for k in 0..5_000 {
                    if (i + k) % 10 == 0 {
                        let mut g = l.write().unwrap();
                        assert_eq!(inside.load(Ordering::SeqCst), 0, "reader inside a write");
                        g.0 += 1;
                        std::hint::spin_loop();
                        g.1 += 1;
                    } else {
                        let g = l.read().unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_readers.fetch_max(n, Ordering::SeqCst);
                        assert_eq!(g.0, g.1);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        for j in joins {
            j();
        }
        let g = l.read().unwrap();
        assert_eq!(*g, (6_000, 6_000));
    });
}

/// Readers overlap so that some reader always holds the lock; without the
/// pending-writer rule the writer would never get in.
#[test]
fn writer_not_starved_by_readers() {
    for (readers_coro, writer_coro) in [(true, true), (false, false), (true, false), (false, true)]
    {
        within(Duration::from_secs(30), move || {
            let l = Arc::new(RwLock::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let reads = Arc::new(AtomicUsize::new(0));
            let readers: Vec<_> = (0..4)
                .map(|i| {
                    let (l, stop, reads) = (l.clone(), stop.clone(), reads.clone());
                    spawn(readers_coro, move || {
                        common::sleep_ms(i);
                        while !stop.load(Ordering::SeqCst) {
                            let g = l.read().unwrap();
                            reads.fetch_add(1, Ordering::SeqCst);
                            common::sleep_ms(2);
                            drop(g);
                        }
                    })
                })
                .collect();
            while reads.load(Ordering::SeqCst) < 8 {
                common::sleep_ms(1);
            }
            let writer = {
                let (l, stop) = (l.clone(), stop.clone());
                spawn(writer_coro, move || {
                    for _ in 0..5 {
                        *l.write().unwrap() += 1;
                    }
                    stop.store(true, Ordering::SeqCst);
                })
            };
            writer();
            for r in readers {
                r();
            }
            assert_eq!(*l.read().unwrap(), 5);
        });
    }
}

#[test]
fn try_lock_poison_and_api() {
    both(|| {
        let l = Arc::new(RwLock::new(vec![1]));
        {
            let r = l.read().unwrap();
            assert!(l.try_read().is_ok());
            assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
            assert_eq!(r.len(), 1);
        }
        {
            let _w = l.write().unwrap();
            assert!(matches!(l.try_read(), Err(TryLockError::WouldBlock)));
            assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
            assert!(format!("{l:?}").contains("<locked>"));
        }
        // A panicking reader does not poison; a panicking writer does.
        let l2 = l.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = l2.read().unwrap();
            panic!("reader");
        }));
        assert!(r.is_err());
        assert!(!l.is_poisoned());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = l2.write().unwrap();
            panic!("writer");
        }));
        assert!(r.is_err());
        assert!(l.is_poisoned());
        assert_eq!(l.read().unwrap_err().into_inner().len(), 1);
        assert!(matches!(l.try_write(), Err(TryLockError::Poisoned(_))));
        l.clear_poison();
        l.write().unwrap().push(2);
        drop(l2);
        let mut l = Arc::try_unwrap(l).unwrap();
        l.get_mut().unwrap().push(3);
        assert_eq!(l.into_inner().unwrap(), [1, 2, 3]);
    });
}

/// Readers queued behind a writer are all let in when it unlocks, and
/// several writers take turns.
#[test]
fn queued_readers_and_writers_all_served() {
    within(Duration::from_secs(30), || {
        corun_runtime::run(|| {
            let l = Arc::new(RwLock::new(0usize));
            let w = l.write().unwrap();
            let hs: Vec<_> = (0..100)
                .map(|i| {
                    let l = l.clone();
                    corun_runtime::spawn(move || {
                        if i % 10 == 0 {
                            *l.write().unwrap() += 1;
                        } else {
                            let _ = *l.read().unwrap();
                        }
                    })
                })
                .collect();
            corun_runtime::sleep(Duration::from_millis(10));
            drop(w);
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*l.read().unwrap(), 10);
        })
    });
}
