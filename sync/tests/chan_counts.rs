//! What a channel reports while selections hold reservations (`len`
//! against `capacity` and `is_full`), and a wait whose deadline lies past
//! the timer clock's range. Each runs on a plain OS thread and inside a
//! coroutine.

mod common;

use std::time::Duration;

use common::{both, eventually, sleep_ms, spawn};
use corun_runtime::WaitReason;
use corun_sync::chan::*;

/// Waits until `n` parties block in a selection: coroutines are observed,
/// threads are given time.
fn until_blocked_in_select(n: usize) {
    if corun_runtime::is_coroutine() {
        eventually(|| {
            corun_runtime::coroutines()
                .iter()
                .filter(|c| c.wait_reason == WaitReason::Select)
                .count()
                >= n
        });
    } else {
        sleep_ms(50);
    }
}

/// Two blocked `Select`s on a bounded(1) channel are each woken with a
/// message reserved for them. `len` counts such messages until taken (as
/// crossbeam's woken selects are seen), but must never say more than the
/// capacity.
#[test]
fn len_never_exceeds_capacity_with_two_woken_selections() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        let (gate_s, gate_r) = bounded::<()>(0);
        let selectors: Vec<_> = (0..2)
            .map(|_| {
                let (r, gate_r) = (r.clone(), gate_r.clone());
                spawn(corun_runtime::is_coroutine(), move || {
                    let mut sel = Select::new();
                    sel.recv(&r);
                    let op = sel.select();
                    gate_r.recv().unwrap();
                    op.recv(&r).unwrap()
                })
            })
            .collect();
        until_blocked_in_select(2);
        s.send(1).unwrap();
        // With both selections blocked, the second message is reserved for
        // the other one at once (Go's hand-off to a waiting receiver).
        if s.send_timeout(2, Duration::from_secs(5)).is_ok() {
            let (len, cap) = (r.len(), r.capacity().unwrap());
            assert!(len <= cap, "len {len} over capacity {cap}");
            assert!(s.is_full());
        }
        gate_s.send(()).unwrap();
        gate_s.send(()).unwrap();
        let mut got: Vec<u32> = selectors.into_iter().map(|j| j()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(r.len(), 0);
    });
}

/// CPU time (user + system) this process has used, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A timeout a little over 2^64 ns (~585 years) is representable as an
/// `Instant`; a coroutine waiting with it must park, not spin.
#[test]
fn a_coroutine_waiting_with_a_585_year_timeout_parks() {
    let far = Duration::from_nanos(u64::MAX) + Duration::from_nanos(1);
    corun_runtime::run(move || {
        let (s, r) = bounded::<u32>(0);
        let (ds, dr) = bounded::<Result<u32, RecvTimeoutError>>(1);
        corun_runtime::go!(move || ds.send(r.recv_timeout(far)).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_ticks();
        std::thread::sleep(Duration::from_millis(500));
        let used = cpu_ticks() - before;
        s.send(5).unwrap();
        assert_eq!(dr.recv().unwrap(), Ok(5));
        // 100 ticks a second: a spinning waiter burns ~50 in 500 ms.
        assert!(used < 20, "{used} ticks of CPU in 500 ms while parked");
    });
}

/// A `Select` blocked on a send to a full bounded(1) channel is woken with
/// the slot a receive freed reserved for it. Once its `select()` has
/// returned, a crossbeam selection holds that slot (its `len` is 1 and
/// `is_full` true), and here `try_send` fails for it too: `len`,
/// `is_empty` and `is_full` must agree.
#[test]
fn a_woken_selections_reserved_slot_counts_in_len() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        s.send(0).unwrap();
        let (picked_s, picked_r) = bounded::<()>(0);
        let (gate_s, gate_r) = bounded::<()>(0);
        let s2 = s.clone();
        let selector = spawn(corun_runtime::is_coroutine(), move || {
            let mut sel = Select::new();
            sel.send(&s2);
            let op = sel.select();
            picked_s.send(()).unwrap();
            gate_r.recv().unwrap();
            op.send(&s2, 1).unwrap();
        });
        until_blocked_in_select(1);
        assert_eq!(r.recv(), Ok(0));
        picked_r.recv().unwrap();
        let (len, empty, full) = (s.len(), s.is_empty(), s.is_full());
        assert!(matches!(s.try_send(9), Err(TrySendError::Full(9))));
        assert_eq!(
            (len, empty, full),
            (1, false, true),
            "len, is_empty, is_full with the only slot held by the selection"
        );
        gate_s.send(()).unwrap();
        selector();
        assert_eq!(r.recv(), Ok(1));
    });
}
