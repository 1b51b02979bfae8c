//! Helpers shared by the channel tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Runs `f` twice: on a plain OS thread and as a coroutine of the global
/// runtime, so every blocking path is exercised both ways.
pub fn both<F>(f: F)
where
    F: Fn() + Send + Sync + Clone + 'static,
{
    let g = f.clone();
    std::thread::spawn(g)
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    corun_runtime::run(f);
}

/// Spawns `f` as a coroutine (`coro`) or as an OS thread, joining through
/// the returned closure.
pub fn spawn<T, F>(coro: bool, f: F) -> Box<dyn FnOnce() -> T + Send>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if coro {
        let h = corun_runtime::spawn(f);
        Box::new(move || h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    } else {
        let h = std::thread::spawn(f);
        Box::new(move || h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }
}

/// Sleeps in the right way for the caller (parks a coroutine).
pub fn sleep_ms(ms: u64) {
    corun_runtime::sleep(Duration::from_millis(ms));
}

/// Asserts that at least `d` passed since `start` (a wait did not end early).
pub fn not_early(start: Instant, d: Duration) {
    let el = start.elapsed();
    assert!(el >= d, "woke early: {el:?} < {d:?}");
}

/// Runs `f` on its own thread and fails the test if it has not finished
/// within `limit` (a lost wake-up shows up as a hang).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    if rx.recv_timeout(limit).is_err() {
        eprintln!("{}", corun_runtime::dump());
        panic!("did not finish within {limit:?}: a waiter was not released");
    }
    match h.join().unwrap() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Polls `cond` for up to 20 s (liveness, not timing).
pub fn eventually(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "condition never held"
        );
        sleep_ms(1);
    }
}

/// Spawns `f` on a fresh one-worker runtime, waits until the coroutine is
/// parked for `reason`, drops the runtime, and checks the coroutine was
/// abandoned (its join reports the shutdown).
pub fn abandon_while_parked<T: Send + 'static>(
    reason: corun_runtime::WaitReason,
    f: impl FnOnce() -> T + Send + 'static,
) {
    let rt = corun_runtime::Runtime::builder()
        .workers(1)
        .build()
        .unwrap();
    let h: corun_runtime::JoinHandle<T> = rt.spawn(f);
    let id = h.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = rt.spawn(corun_runtime::coroutines).join().unwrap();
        if live.iter().any(|c| c.id == id && c.wait_reason == reason) {
            break;
        }
        assert!(Instant::now() < deadline, "the coroutine never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rt);
    let payload = h.join().err().expect("abandoned by the shutdown");
    let msg = payload.downcast_ref::<String>().expect("a message");
    assert!(msg.contains("shut down"), "{msg}");
}

/// Runs `f` on a thread and fails (rather than hanging the suite) if it
/// does not return within a generous bound.
pub fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("blocked on a dead coroutine")
}
