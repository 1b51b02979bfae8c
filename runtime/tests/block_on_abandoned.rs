//! `block_on`'s closure may borrow from its caller; a caller abandoned by
//! its own runtime's shutdown must leave those borrows valid until the
//! coroutine using them is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use corun_runtime::{Builder, Runtime};

/// Set by the pinned thread's thread-local as it is destroyed.
static TLS_DROPPED: AtomicBool = AtomicBool::new(false);

/// A thread-local value that records its destruction (and frees a box, for
/// memcheck to see a later read as a use after free).
struct Tracked(Box<AtomicBool>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
        TLS_DROPPED.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static ON_PINNED_THREAD: Tracked = Tracked(Box::new(AtomicBool::new(true)));
}

/// A pinned coroutine may keep a reference into its thread's
/// thread-locals across waits (its thread is its own), so it may lend one
/// to `block_on` on another runtime. If its own runtime is dropped while
/// it waits there, it is abandoned; its pinned thread must not exit (and
/// destroy its thread-locals) while the other runtime's coroutine still
/// uses the borrow.
#[test]
fn abandoned_pinned_caller_keeps_its_thread_locals_for_block_on() {
    let outer = Runtime::builder().workers(1).build().unwrap();
    let inner: &'static Runtime =
        Box::leak(Box::new(Runtime::builder().workers(1).build().unwrap()));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<bool>();
    let pinned = outer.block_on(|| {
        Builder::new()
            .pinned(true)
            .spawn(move || {
                ON_PINNED_THREAD.with(|v| {
                    inner.block_on(move || {
                        started_tx.send(()).unwrap();
                        corun_runtime::blocking(|| go_rx.recv().unwrap());
                        seen_tx.send(v.0.load(Ordering::SeqCst)).unwrap();
                    })
                })
            })
            .unwrap()
    });
    started_rx.recv().unwrap();
    // Let the pinned coroutine park in `block_on`'s join.
    std::thread::sleep(Duration::from_millis(200));
    drop(outer);
    // Its pinned thread, if it exits, destroys the thread-local promptly.
    let until = Instant::now() + Duration::from_millis(500);
    while !TLS_DROPPED.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let dropped_while_borrowed = TLS_DROPPED.load(Ordering::SeqCst);
    go_tx.send(()).unwrap();
    let alive = seen_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        !dropped_while_borrowed && alive,
        "the pinned thread's thread-local was destroyed while block_on's coroutine borrowed it \
         (dropped: {dropped_while_borrowed}, seen alive: {alive})"
    );
    assert!(pinned.join().is_err(), "the pinned coroutine was abandoned");
    // Once the borrowing coroutine is done, the thread may go.
    let until = Instant::now() + Duration::from_secs(20);
    while !TLS_DROPPED.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        TLS_DROPPED.load(Ordering::SeqCst),
        "the pinned thread exits once block_on's coroutine has finished"
    );
}
