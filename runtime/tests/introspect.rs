//! stats(), coroutines() and dump() see every live coroutine as it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use corun_runtime::{Builder, Runtime, State, WaitReason, go};

#[test]
fn dump_lists_every_live_coroutine_with_its_wait_reason() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    for i in 0..5 {
        let stop = stop.clone();
        hs.push(rt.block_on(move || {
            Builder::new()
                .name(format!("parker-{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        corun_runtime::park(WaitReason::Park);
                    }
                })
                .unwrap()
        }));
    }
    let sleeper = rt.block_on(|| {
        Builder::new()
            .name("sleeper")
            .spawn(|| corun_runtime::sleep(Duration::from_secs(3600)))
            .unwrap()
    });
    let blocker_go = Arc::new(AtomicBool::new(false));
    let bg = blocker_go.clone();
    let blocker = rt.block_on(move || {
        Builder::new()
            .name("blocker")
            .spawn(move || {
                corun_runtime::blocking(|| {
                    while !bg.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(100));
    let infos = rt.block_on(corun_runtime::coroutines);
    let find = |name: &str| {
        infos
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .unwrap()
            .clone()
    };
    for i in 0..5 {
        let c = find(&format!("parker-{i}"));
        assert_eq!(c.state, State::Waiting);
        assert_eq!(c.wait_reason, WaitReason::Park);
        assert!(
            c.spawn_site.file().ends_with("introspect.rs"),
            "{}",
            c.spawn_site
        );
    }
    assert_eq!(find("sleeper").wait_reason, WaitReason::Sleep);
    let b = find("blocker");
    assert_eq!(
        (b.state, b.wait_reason),
        (State::Syscall, WaitReason::Blocking)
    );
    // The dumping coroutine itself is running.
    assert!(
        infos
            .iter()
            .any(|c| c.state == State::Running && c.name.as_deref() == Some("main"))
    );

    let dump = rt.block_on(corun_runtime::dump);
    for i in 0..5 {
        assert!(dump.contains(&format!("\"parker-{i}\" [park]:")), "{dump}");
    }
    assert!(dump.contains("\"sleeper\" [sleep]:"), "{dump}");
    assert!(dump.contains("\"blocker\" [syscall]:"), "{dump}");
    assert!(dump.contains("created at "), "{dump}");

    let s = rt.stats();
    assert!(
        s.coroutines >= 7 && s.waiting >= 6 && s.syscall == 1,
        "{s:?}"
    );
    assert_eq!(s.ps, 2);

    blocker_go.store(true, Ordering::Release);
    blocker.join().unwrap();
    // The parkers and the sleeper are still parked: dropping the runtime
    // completes them with an error.
    drop(rt);
    for h in hs {
        assert!(h.join().is_err());
    }
    assert!(sleeper.join().is_err());
}

#[test]
fn finished_coroutines_leave_the_registry() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let hs: Vec<_> = (0..1000).map(|_| go!(|| ())).collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let s = rt.stats();
    assert_eq!(s.coroutines, 0, "{s:?}");
    assert!(s.spawned >= 1001, "{s:?}");
}

/// Stack size of the named coroutines the listing races spawn, so that a
/// listing can check a name against a stack size.
const RACER_STACK: usize = 96 * 1024;

/// Starts two pinned coroutines of `rt` (each on a thread of its own, so
/// listings run in parallel with the workers) that list its coroutines
/// until `done`, checking every entry for consistency: a task read after
/// its memory was freed or reused would pair one coroutine's name with
/// another's stack size. Each returns how many listings it made.
fn spawn_listers(rt: &Runtime, done: &Arc<AtomicBool>) -> Vec<corun_runtime::JoinHandle<u64>> {
    (0..2)
        .map(|_| {
            let done = done.clone();
            let b = Builder::new().pinned(true);
            rt.block_on(move || {
                b.spawn(move || {
                    let mut listings = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        for c in corun_runtime::coroutines() {
                            assert!(c.spawn_site.file().ends_with(".rs"), "{c:?}");
                            assert!(c.stack_size > 0, "{c:?}");
                            assert_eq!(
                                c.name.as_deref() == Some("racer"),
                                c.stack_size == RACER_STACK,
                                "{c:?}"
                            );
                            assert!(
                                matches!(c.name.as_deref(), None | Some("racer" | "main")),
                                "{c:?}"
                            );
                        }
                        let s = corun_runtime::stats();
                        assert_eq!(s.coroutines, s.running + s.runnable + s.waiting + s.syscall);
                        listings += 1;
                    }
                    listings
                })
                .unwrap()
            })
        })
        .collect()
}

/// Coroutines finish and leave the registry while other threads list
/// them: every entry must be consistent (a lister reading a task whose
/// memory was reused would pair one coroutine's name with another's stack
/// size) and the counts must add up.
#[test]
fn listings_race_with_coroutines_finishing() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let listers = spawn_listers(&rt, &done);
    rt.block_on(|| {
        for round in 0..20u64 {
            let hs: Vec<_> = (0..2_000u64)
                .map(|i| {
                    let b = if i % 2 == 0 {
                        Builder::new().name("racer").stack_size(RACER_STACK)
                    } else {
                        Builder::new()
                    };
                    b.spawn(move || {
                        if i % 3 == 0 {
                            corun_runtime::yield_now();
                        }
                        round * i
                    })
                    .unwrap()
                })
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), round * i as u64);
            }
        }
    });
    done.store(true, Ordering::Relaxed);
    for l in listers {
        assert!(l.join().unwrap() > 0);
    }
    assert_eq!(rt.stats().coroutines, 0, "{:?}", rt.stats());
}

/// Detached coroutines: when one finishes, the registry holds the last
/// reference and frees the task, while other threads list the registry.
/// A lister must never take a reference to a task already freed (its
/// memory is reused by the next spawn at once: a stale read pairs one
/// coroutine's name with another's stack size, or finds no name at all).
#[test]
fn listings_race_with_detached_coroutines_freed_by_the_registry() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let listers = spawn_listers(&rt, &done);
    let finished = Arc::new(std::sync::atomic::AtomicU64::new(0));
    const N: u64 = 40_000;
    let f = finished.clone();
    rt.block_on(move || {
        for i in 0..N {
            let f = f.clone();
            let b = if i % 2 == 0 {
                Builder::new().name("racer").stack_size(RACER_STACK)
            } else {
                Builder::new()
            };
            // The handle is dropped at once: the task is detached.
            drop(
                b.spawn(move || {
                    if i % 3 == 0 {
                        corun_runtime::yield_now();
                    }
                    f.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap(),
            );
        }
        while f.load(Ordering::Relaxed) < N {
            corun_runtime::sleep(Duration::from_millis(1));
        }
    });
    done.store(true, Ordering::Relaxed);
    for l in listers {
        assert!(l.join().unwrap() > 0);
    }
    assert_eq!(finished.load(Ordering::Relaxed), N);
    // Detached tasks leave once their last step (after the counter) is done.
    for _ in 0..30_000 {
        if rt.stats().coroutines == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("detached coroutines left behind: {:?}", rt.stats());
}

/// A finished coroutine's handle still answers for its id, name and
/// result after its stack was reused by later coroutines.
#[test]
fn a_finished_coroutines_handle_still_answers() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let early = Builder::new()
            .name("early")
            .spawn(|| String::from("kept"))
            .unwrap();
        while !early.is_finished() {
            corun_runtime::yield_now();
        }
        let later: Vec<_> = (0..1_000u64).map(|i| go!(move || i)).collect();
        let sum: u64 = later.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 999 * 1_000 / 2);
        assert_eq!(early.name(), Some("early"));
        assert_eq!(early.coroutine().name(), Some("early"));
        let id = early.id();
        assert_eq!(early.coroutine().id(), id);
        assert_eq!(early.join().unwrap(), "kept");
    });
}
