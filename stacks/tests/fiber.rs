//! A fiber keeps its state at the top of its own stack: the state must
//! survive the fiber's deepest frames, move out before the stack is reused,
//! and be in force while a dropped fiber unwinds.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};

use corun_stacks::fiber::{Fiber, Resumed, in_fiber, suspend};
use corun_stacks::{Stack, stats};

/// The pool's counts are process-wide: every test that reads them or
/// takes a stack takes a turn. A failed test's turn does not fail the
/// others (they would only report its poison).
fn turn() -> MutexGuard<'static, ()> {
    static COUNTS: Mutex<()> = Mutex::new(());
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_fiber_is_one_pointer() {
    assert_eq!(std::mem::size_of::<Fiber>(), std::mem::size_of::<usize>());
    assert_eq!(
        std::mem::size_of::<Option<Fiber>>(),
        std::mem::size_of::<usize>()
    );
}

/// Fills most of the stack below the caller, then suspends from the bottom
/// of that: a state the frames overlapped would be garbage on resume.
#[inline(never)]
fn deep(bytes: usize) -> u64 {
    let mut block = [0u8; 16 * 1024];
    for (i, b) in block.iter_mut().enumerate() {
        *b = i as u8;
    }
    std::hint::black_box(&mut block);
    let below = if bytes > block.len() {
        deep(bytes - block.len())
    } else {
        suspend(7);
        0
    };
    below + block.iter().map(|&b| u64::from(b)).sum::<u64>()
}

#[test]
fn the_deepest_frames_leave_the_state_intact() {
    let _turn = turn();
    let stack = Stack::new(128 * 1024).unwrap();
    let top = stack.top();
    let mut f = Fiber::new(stack, || {
        // 96 KiB of frames on a 128 KiB stack.
        let sum = deep(96 * 1024);
        assert_eq!(sum, 6 * (0..16 * 1024u64).map(|i| i % 256).sum::<u64>());
        suspend(8);
    });
    assert_eq!(f.resume(), Resumed::Suspended(7));
    assert!(f.is_started() && !f.is_finished());
    // The handle may move while the fiber is suspended; its state does not.
    let mut moved = Some(f);
    let mut f = moved.take().unwrap();
    assert_eq!(f.resume(), Resumed::Suspended(8));
    assert_eq!(f.resume(), Resumed::Finished);
    let stack = f.into_stack();
    assert_eq!(stack.top(), top);

    // The same slot again: the next fiber's state is written afresh.
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let mut g = Fiber::new(stack, move || r.set(deep(32 * 1024)));
    assert_eq!(g.resume(), Resumed::Suspended(7));
    assert_eq!(g.resume(), Resumed::Finished);
    assert!(ran.get() > 0);
}

#[test]
fn dropping_a_suspended_fiber_unwinds_it_in_its_own_context() {
    struct Probe(Rc<Cell<Option<bool>>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            // Destructors of a dropped fiber run on its stack, with its
            // context in force.
            self.0.set(Some(in_fiber()));
        }
    }
    let _turn = turn();
    let seen = Rc::new(Cell::new(None));
    let in_use = stats().in_use;
    let probe = Probe(seen.clone());
    let mut f = Fiber::new(Stack::new(64 * 1024).unwrap(), move || {
        let _probe = probe;
        suspend(1);
        unreachable!("a dropped fiber is not resumed");
    });
    assert_eq!(f.resume(), Resumed::Suspended(1));
    assert_eq!(stats().in_use, in_use + 1);
    drop(f);
    assert_eq!(seen.get(), Some(true));
    assert_eq!(stats().in_use, in_use, "the stack went back to the pool");
    assert!(!in_fiber(), "the dropper's context is back");
}

#[test]
fn a_fiber_dropped_before_its_first_resume_gives_its_stack_back() {
    let _turn = turn();
    let in_use = stats().in_use;
    let f = Fiber::new(Stack::new(64 * 1024).unwrap(), || unreachable!());
    assert!(!f.is_started());
    drop(f);
    assert_eq!(stats().in_use, in_use);
}

#[test]
fn functions_of_any_size_start_and_are_dropped_once() {
    // Takes stacks from the pool, which other tests count.
    let _turn = turn();
    // Around the size above which `Fiber::new` boxes the function.
    const MAX_INLINE_FUNCTION: usize = 512;
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    fn check<const N: usize>() {
        let drops = Rc::new(Cell::new(0));
        let sum = Rc::new(Cell::new(0u64));
        let payload = [1u8; N];
        let guard = Counted(drops.clone());
        let out = sum.clone();
        let mut f = Fiber::new(Stack::new(256 * 1024).unwrap(), move || {
            let _guard = guard;
            out.set(payload.iter().map(|&b| u64::from(b)).sum());
        });
        assert_eq!(f.resume(), Resumed::Finished);
        assert_eq!(sum.get(), N as u64, "the whole capture arrived");
        assert_eq!(drops.get(), 1);
        // Never started: the function is dropped with the fiber, once.
        let guard = Counted(drops.clone());
        let f2 = Fiber::new(Stack::new(256 * 1024).unwrap(), move || {
            let _keep = (&guard, payload);
        });
        drop(f2);
        assert_eq!(drops.get(), 2);
        drop(f);
    }
    check::<16>();
    check::<{ MAX_INLINE_FUNCTION - 64 }>();
    check::<{ MAX_INLINE_FUNCTION + 1 }>();
    check::<4096>();
    check::<65536>();
}

/// A fiber that never started has no frames: its function is dropped on
/// the dropper's stack, so code in that drop must see the dropper's stack
/// bounds (which `grow` decides by), not the fiber's.
#[test]
fn an_unstarted_fiber_is_dropped_in_the_droppers_context() {
    struct Probe(Rc<Cell<Option<usize>>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(corun_stacks::remaining_stack());
        }
    }
    // Takes a stack from the pool, which other tests count.
    let _turn = turn();
    let seen = Rc::new(Cell::new(None));
    let probe = Probe(seen.clone());
    let f = Fiber::new(Stack::new(64 * 1024).unwrap(), move || {
        let _probe = &probe;
        unreachable!()
    });
    let here = corun_stacks::remaining_stack().expect("a test thread's bounds are known");
    drop(f);
    let there = seen.get().expect("the probe was dropped");
    assert!(
        there.abs_diff(here) < 64 * 1024,
        "the drop saw {there} bytes of stack left where the dropper has {here}"
    );
}
