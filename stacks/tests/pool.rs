//! The pool under random acquire/release sequences across threads: no slot
//! is handed out twice, every guard is in place, counts add up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use corun_stacks::{GUARD_SIZE, Stack};
use proptest::prelude::*;

/// True if the byte at `addr` cannot be read: `write(2)` from it into a
/// pipe fails with EFAULT instead of faulting the process.
fn unreadable(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: plain pipe creation into a local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: write(2) only reads `addr` from the kernel side; a guarded
    // address makes it return EFAULT. Both fds are ours and closed below.
    let r = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
    let err = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: closing the fds we opened.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    r == -1 && err == Some(libc::EFAULT)
}

fn check_stack(s: &Stack) {
    // Guard: the whole region below the usable part is inaccessible.
    assert!(
        unreadable(s.bottom() - 1),
        "guard missing under {:#x}",
        s.bottom()
    );
    assert!(
        unreadable(s.bottom() - GUARD_SIZE),
        "guard too short under {:#x}",
        s.bottom()
    );
    // Usable part: writable at both ends (committed on first touch).
    // SAFETY: we own the slot; both addresses are inside its usable range.
    unsafe {
        std::ptr::write_volatile((s.top() - 128) as *mut u64, 7);
        std::ptr::write_volatile(s.bottom() as *mut u64, 9);
        assert_eq!(std::ptr::read_volatile(s.bottom() as *const u64), 9);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire(usize),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3).prop_map(|i| Op::Acquire([16 * 1024, 64 * 1024, 256 * 1024][i])),
        any::<usize>().prop_map(Op::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_across_threads(plans in proptest::collection::vec(proptest::collection::vec(op(), 1..200), 2..4)) {
        // Every live slot top across all threads: a duplicate is a slot
        // handed out twice.
        let live: Arc<Mutex<HashSet<usize>>> = Arc::default();
        let threads: Vec<_> = plans.into_iter().map(|plan| {
            let live = live.clone();
            std::thread::spawn(move || {
                let mut mine: Vec<Stack> = Vec::new();
                for op in plan {
                    match op {
                        Op::Acquire(size) => {
                            let s = Stack::new(size).unwrap();
                            assert!(s.size() >= size);
                            assert!(live.lock().unwrap().insert(s.top()), "slot {:#x} handed out twice", s.top());
                            check_stack(&s);
                            mine.push(s);
                        }
                        Op::Release(i) if !mine.is_empty() => {
                            let s = mine.swap_remove(i % mine.len());
                            assert!(live.lock().unwrap().remove(&s.top()));
                            drop(s);
                        }
                        Op::Release(_) => {}
                    }
                }
                for s in mine {
                    assert!(live.lock().unwrap().remove(&s.top()));
                }
            })
        }).collect();
        for t in threads {
            t.join().unwrap();
        }
        prop_assert!(live.lock().unwrap().is_empty());
    }
}

#[test]
fn recycled_stacks_keep_their_guard() {
    for _ in 0..3 {
        let stacks: Vec<_> = (0..200).map(|_| Stack::new(64 * 1024).unwrap()).collect();
        for s in &stacks {
            check_stack(s);
        }
        drop(stacks);
        corun_stacks::trim();
    }
}

#[test]
fn sizes_are_checked() {
    assert!(Stack::new(0).is_err());
    assert!(Stack::new(16 * 1024 - 1).is_err());
    assert!(Stack::new((1 << 30) + 1).is_err());
    let e = Stack::new(1).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("16 KiB to 1 GiB"), "{e}");
    assert_eq!(Stack::new(20_000).unwrap().size(), 20_480);
}
