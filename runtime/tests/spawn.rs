//! Spawning and joining, from threads and from coroutines.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corun_runtime::{Builder, Runtime, go};

#[test]
fn join_from_thread() {
    let h = go!(|| 21 * 2);
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn join_from_coroutine() {
    let v = corun_runtime::run(|| {
        assert!(corun_runtime::is_coroutine());
        go!(|| "inner").join().unwrap()
    });
    assert_eq!(v, "inner");
    assert!(!corun_runtime::is_coroutine());
}

fn tree(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let hs: Vec<_> = (0..4).map(|_| go!(move || tree(depth - 1))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn nested_spawns() {
    assert_eq!(corun_runtime::run(|| tree(6)), 4096);
    // From a plain thread the tree's root is a thread, its children coroutines.
    assert_eq!(tree(4), 256);
}

#[test]
fn handle_reports_id_name_and_finish() {
    let h = Builder::new()
        .name("named")
        .spawn(|| corun_runtime::current().unwrap())
        .unwrap();
    assert_eq!(h.name(), Some("named"));
    let id = h.id();
    while !h.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let me = h.join().unwrap();
    assert_eq!(me.id(), id);
    assert_eq!(me.name(), Some("named"));
}

#[test]
fn ids_are_unique_across_threads() {
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                let hs: Vec<_> = (0..2000).map(|_| go!(|| ())).collect();
                let mut ids = ids.lock().unwrap();
                for h in hs {
                    assert!(ids.insert(h.id()), "duplicate coroutine id");
                    h.join().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(ids.lock().unwrap().len(), 8000);
}

#[test]
fn dropped_handle_detaches() {
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let done = done.clone();
        drop(go!(move || {
            corun_runtime::sleep(Duration::from_millis(2));
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let t = Instant::now();
    while done.load(Ordering::SeqCst) < 100 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "detached coroutines did not finish"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn bad_stack_sizes_are_refused() {
    for size in [0, 1024, (1 << 30) + 1, usize::MAX] {
        let err = Builder::new().stack_size(size).spawn(|| ()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("stack size"), "{err}");
    }
    let big = Builder::new().stack_size(64 << 20).spawn(|| 1).unwrap();
    assert_eq!(big.join().unwrap(), 1);
}

#[test]
fn bad_runtime_settings_are_refused() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = Runtime::builder()
        .workers(1)
        .stack_size(10)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("stack size"), "{e}");
    let e = Runtime::builder()
        .workers(4)
        .max_threads(2)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_threads"), "{e}");
}

#[test]
fn explicit_runtime_block_on_and_shutdown() {
    let rt = Runtime::builder()
        .workers(2)
        .name("test-rt")
        .build()
        .unwrap();
    let v = rt.block_on(|| {
        let hs: Vec<_> = (0..1000u64).map(|i| go!(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(v, 499_500);
    assert_eq!(rt.workers(), 2);
    // A coroutine parked forever when the runtime goes away: its joiner
    // returns an error instead of hanging.
    let stuck = rt.spawn(|| {
        loop {
            corun_runtime::park(corun_runtime::WaitReason::Park);
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    let err = stuck.join().unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("shut down"), "{msg}");
}

#[test]
fn block_on_propagates_panics() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(|| panic!("boom"))
    }));
    assert!(r.is_err());
    assert_eq!(rt.block_on(|| 5), 5, "runtime keeps running after a panic");
}

/// `block_on` and `run` take closures that borrow, as `thread::scope`
/// and tokio's `block_on` do: from a thread, from a coroutine of another
/// runtime (borrowing its stack), and through a panic.
#[test]
fn block_on_borrows_from_its_caller() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let mut seen = Vec::new();
    let total: u64 = rt.block_on(|| {
        let hs: Vec<_> = (0..100u64).map(|i| go!(move || i)).collect();
        for h in hs {
            seen.push(h.join().unwrap());
        }
        seen.iter().sum()
    });
    assert_eq!((seen.len(), total), (100, 4950));

    let rt = Arc::new(rt);
    let outer = corun_runtime::spawn({
        let rt = rt.clone();
        move || {
            let on_my_stack = [7u8; 4096];
            let mut count = 0;
            let first = rt.block_on(|| {
                count += 1;
                corun_runtime::yield_now();
                &on_my_stack[..]
            });
            (first.iter().map(|&b| u64::from(b)).sum::<u64>(), count)
        }
    });
    assert_eq!(outer.join().unwrap(), (7 * 4096, 1));

    let mut log = vec!["before"];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        corun_runtime::run(|| {
            log.push("inside");
            panic!("with a borrow");
        })
    }));
    assert!(r.is_err());
    assert_eq!(log, ["before", "inside"]);
    assert_eq!(corun_runtime::run(|| log.len()), 2);
}

#[test]
fn panics_stay_in_their_coroutine() {
    let hs: Vec<_> = (0..50)
        .map(|i| {
            go!(move || {
                if i % 2 == 0 {
                    panic!("even {i}");
                }
                i
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        match h.join() {
            Ok(v) => assert_eq!(v, i),
            Err(p) => {
                assert_eq!(i % 2, 0);
                assert_eq!(p.downcast_ref::<String>().unwrap(), &format!("even {i}"));
            }
        }
    }
    assert_eq!(go!(|| 7).join().unwrap(), 7);
}

/// Destructors are user code too: a panic in a coroutine-local's
/// destructor is the coroutine's, and one in the destructor of an output
/// or of a never-run closure, wherever the runtime drops it, costs neither
/// the worker nor the thread that dropped the handle.
#[test]
fn panicking_destructors_stay_in_their_coroutine() {
    struct Boom(&'static str);
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("{}", self.0);
        }
    }
    corun_runtime::coroutine_local! {
        static LOCAL: std::cell::RefCell<Option<Boom>> = const { std::cell::RefCell::new(None) };
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    let h = rt.spawn(|| LOCAL.with(|l| *l.borrow_mut() = Some(Boom("local"))));
    let payload = h.join().expect_err("the local's destructor panicked");
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "local");

    // A detached coroutine's output is dropped by the worker that ran it.
    for _ in 0..4 {
        drop(rt.spawn(|| Boom("detached output")));
    }
    // A joined-late one's by the thread that drops the handle.
    let h = rt.spawn(|| Boom("dropped output"));
    while !h.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(h);
    assert_eq!(
        rt.block_on(|| go!(|| 9).join().unwrap()),
        9,
        "the worker survived"
    );
    drop(rt);
}

#[test]
fn stealing_spreads_cpu_work() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    // One round normally shows both threads; which thread runs is the OS's
    // call though, so on a loaded machine rounds repeat, within a generous
    // bound, until the idle worker has taken work from the busy one.
    let start = Instant::now();
    let mut threads = HashSet::new();
    while threads.len() < 2 && start.elapsed() < Duration::from_secs(20) {
        threads.extend(rt.block_on(|| {
            let hs: Vec<_> = (0..64)
                .map(|_| {
                    go!(|| {
                        // CPU work without yield points, long enough that one
                        // worker alone would leave the other's queue waiting.
                        let t = Instant::now();
                        let mut x = 0u64;
                        while t.elapsed() < Duration::from_millis(2) {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                        std::thread::current().id()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        }));
    }
    assert!(threads.len() >= 2, "all CPU work ran on one thread");
}

#[test]
fn yield_now_interleaves_on_one_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    rt.block_on(move || {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let l = l.clone();
                go!(move || {
                    for _ in 0..3 {
                        l.lock().unwrap().push(i);
                        corun_runtime::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 9);
    // With one worker and yields, no coroutine runs all its steps first.
    assert_ne!(&log[..3], &[log[0]; 3]);
}

/// A coroutine spawned by one that keeps running (no yield point) is
/// stolen from the spawner's `runnext` by the idle worker, not left there
/// until sysmon takes the spawner's P. Before thieves took `runnext` from
/// running Ps (after a grace period), about a quarter of the rounds needed
/// that hand-off (the others waited up to a time slice too); a rare slow
/// thief may still need one.
#[test]
fn a_busy_spawners_new_coroutine_is_stolen_not_handed_off() {
    const ROUNDS: u64 = 100;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handoffs = rt.block_on(|| {
        let before = corun_runtime::stats().handoffs;
        for _ in 0..ROUNDS {
            let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = ran.clone();
            let h = corun_runtime::spawn(move || flag.store(true, Ordering::Release));
            let t = Instant::now();
            while !ran.load(Ordering::Acquire) {
                assert!(t.elapsed() < Duration::from_secs(30), "never ran");
                std::hint::spin_loop();
            }
            h.join().unwrap();
        }
        corun_runtime::stats().handoffs - before
    });
    assert!(
        handoffs <= ROUNDS / 20,
        "{handoffs} of {ROUNDS} rounds needed sysmon's hand-off"
    );
}

/// Started, unfinished nodes of a spawn tree: now and the peak.
#[derive(Default)]
struct Live {
    now: AtomicUsize,
    peak: AtomicUsize,
}

fn wide_tree(depth: u32, live: Arc<Live>) -> u64 {
    let now = live.now.fetch_add(1, Ordering::Relaxed) + 1;
    live.peak.fetch_max(now, Ordering::Relaxed);
    let sum = if depth == 0 {
        1
    } else {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                let live = live.clone();
                go!(move || wide_tree(depth - 1, live))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    };
    live.now.fetch_sub(1, Ordering::Relaxed);
    sum
}

/// A full local queue spills its older half to the global queue (Go's
/// `runqputslow`), so a wide spawn tree finishes subtrees before starting
/// most of its nodes, and their stacks are reused. A queue that grew without
/// bound ran the tree nearly breadth-first: at its peak 8,304 nodes (most of
/// the 11,111 inner ones) were parked holding a stack; with the spill the
/// peak is 1,631. On one worker the order, and so the peak, is
/// deterministic.
#[test]
fn a_wide_spawn_tree_does_not_start_every_node_at_once() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let live = Arc::new(Live::default());
    let l = live.clone();
    assert_eq!(rt.block_on(move || wide_tree(5, l)), 100_000);
    let peak = live.peak.load(Ordering::Relaxed);
    assert!(
        peak < 4_000,
        "{peak} of the tree's 111,111 nodes were running or parked at once"
    );
}

/// A closure's captures travel to the coroutine's stack whatever their size
/// (the switch code itself moves at most 1 KiB), and so does a large output.
#[test]
fn large_captures_and_outputs() {
    fn sum(bytes: &[u8]) -> u64 {
        bytes.iter().map(|&b| u64::from(b)).sum()
    }
    fn spawn_all() {
        let small = [2u8; 900];
        let page = [3u8; 4096];
        let large = [4u8; 65536];
        let hs = vec![
            corun_runtime::spawn(move || sum(&small)),
            corun_runtime::spawn(move || sum(&page)),
            corun_runtime::spawn(move || sum(&large)),
        ];
        let sums: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(sums, [2 * 900, 3 * 4096, 4 * 65536]);
        let out = corun_runtime::spawn(|| [6u8; 100_000]).join().unwrap();
        assert_eq!(sum(&out), 6 * 100_000);
        let pinned = Builder::new()
            .pinned(true)
            .spawn(move || sum(&page))
            .unwrap();
        assert_eq!(pinned.join().unwrap(), 3 * 4096);
    }
    spawn_all();
    corun_runtime::spawn(spawn_all).join().unwrap();
}

/// Shutdown drops the closures of coroutines that never started. Their
/// destructors are user code: one that panics must neither escape
/// `Runtime`'s drop nor stop shutdown before the other coroutines are
/// completed (their joiners would wait for good).
#[test]
fn a_panicking_unrun_closure_does_not_derail_shutdown() {
    struct Boom;
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("closure dropped unrun");
        }
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (started_tx, started) = std::sync::mpsc::channel();
    // Holds the only worker while the others are queued behind it.
    let busy = rt.spawn(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    started.recv().unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let boom = Boom;
            rt.spawn(move || {
                let _keep = &boom;
            })
        })
        .collect();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "a closure's panic escaped Runtime::drop");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = busy.join();
        for h in hs {
            let _ = h.join();
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a joiner still waits after shutdown");
}

/// Shutdown drops the callbacks of timers that can never fire (a deadline
/// past the clock's range; those that can are handed to the global
/// runtime): a callback's captures panicking on drop must not escape
/// `Runtime`'s drop before the parked coroutines are completed.
#[test]
fn a_panicking_unfired_timer_callback_does_not_derail_shutdown() {
    struct Boom;
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("timer callback dropped unrun");
        }
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let boom = Boom;
        // The handle is dropped at once: the queue holds the last reference.
        drop(corun_runtime::Timer::at(
            std::time::Instant::now() + Duration::from_secs(600 * 365 * 86_400),
            move || {
                let _keep = &boom;
            },
        ));
    });
    let (parked_tx, parked) = std::sync::mpsc::channel();
    let sleeper = rt.spawn(move || {
        parked_tx.send(()).unwrap();
        loop {
            corun_runtime::park(corun_runtime::WaitReason::Park);
        }
    });
    parked.recv().unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "a callback's panic escaped Runtime::drop");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(sleeper.join().is_err()).unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "the parked coroutine was not completed by shutdown"
    );
}

/// A detached coroutine's result is dropped by the coroutine itself, so a
/// destructor that waits (here it joins another coroutine) parks like any
/// coroutine code. Dropped by the worker that ran it, it parked the
/// worker's thread with the P held, and on one worker the coroutine it
/// waited for could never run.
#[test]
fn a_detached_results_destructor_may_wait() {
    struct JoinOnDrop(
        Option<corun_runtime::JoinHandle<()>>,
        std::sync::mpsc::Sender<()>,
    );
    impl Drop for JoinOnDrop {
        fn drop(&mut self) {
            self.0.take().unwrap().join().unwrap();
            self.1.send(()).unwrap();
        }
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    for detach_late in [false, true] {
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let h = rt.spawn(move || {
            let waited_for =
                corun_runtime::spawn(|| corun_runtime::sleep(Duration::from_millis(20)));
            if detach_late {
                // Finish before the handle goes: the handle's drop is then
                // the last word on the result.
                ready_tx.send(()).unwrap();
            }
            JoinOnDrop(Some(waited_for), tx)
        });
        if detach_late {
            ready_rx.recv().unwrap();
            while !h.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(h);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the destructor's join never returned");
    }
}

/// Whoever ends up dropping a result, it is never a worker outside any
/// coroutine: handles dropped at every moment around their coroutine's
/// end (before it, while it stores its result, after it).
#[test]
fn results_are_never_dropped_outside_a_coroutine_on_a_worker() {
    static MISPLACED: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Probe(std::thread::ThreadId);
    impl Drop for Probe {
        fn drop(&mut self) {
            if !corun_runtime::is_coroutine() && std::thread::current().id() != self.0 {
                MISPLACED.fetch_add(1, Ordering::Relaxed);
            }
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
    let rt = Runtime::builder().workers(2).build().unwrap();
    let main = std::thread::current().id();
    const N: usize = 20_000;
    for i in 0..N {
        let h = rt.spawn(move || Probe(main));
        for _ in 0..(i % 64) * 8 {
            std::hint::spin_loop();
        }
        drop(h);
    }
    let start = Instant::now();
    while DROPPED.load(Ordering::Relaxed) < N {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "results not dropped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(MISPLACED.load(Ordering::Relaxed), 0);
}
