//! Regression tests for defects found by review of the channel code; each
//! runs on a plain OS thread and inside a coroutine.

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
