//! A channel gives back the memory a backlog grew its buffer to once the
//! backlog drains (crossbeam's unbounded channel frees its blocks as they
//! drain; Go's channels never grow). Its own test binary: the counting
//! allocator sees every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use corun_sync::chan::{bounded, unbounded};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; the counter is a
// side record of the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BACKLOG: usize = 1 << 20;

#[test]
fn a_drained_backlog_gives_its_memory_back() {
    let (s, r) = unbounded::<u64>();
    let before = LIVE.load(Ordering::SeqCst);
    for i in 0..BACKLOG as u64 {
        s.send(i).unwrap();
    }
    let peak = LIVE.load(Ordering::SeqCst);
    assert!(peak - before >= BACKLOG * 8, "the backlog is buffered");
    for i in 0..BACKLOG as u64 {
        assert_eq!(r.recv(), Ok(i));
    }
    let after = LIVE.load(Ordering::SeqCst);
    assert!(
        after - before < 64 * 1024,
        "{} bytes still held after the backlog drained",
        after - before
    );

    // A bounded channel keeps the buffer it allocated up front.
    let (s, r) = bounded::<u64>(1000);
    let held = LIVE.load(Ordering::SeqCst);
    for round in 0..3 {
        for i in 0..1000 {
            s.send(round * 1000 + i).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(r.recv(), Ok(round * 1000 + i));
        }
    }
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        held,
        "no allocation per message"
    );
}
