//! Stats stay consistent with what is held (own binary: counts are global).

use std::sync::Mutex;

use corun_stacks::{Stack, stats};

/// The counts are process-wide: these tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn stats_follow_acquire_and_release() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = stats();
    let held: Vec<_> = (0..100).map(|_| Stack::new(32 * 1024).unwrap()).collect();
    let s = stats();
    assert_eq!(s.in_use, base.in_use + 100);
    assert!(s.reserved_bytes >= base.reserved_bytes);
    drop(held);
    let s = stats();
    assert_eq!(s.in_use, base.in_use);
    assert!(s.pooled + s.free_slots >= 100, "{s:?}");
    corun_stacks::trim();
    let after_trim = stats();
    assert_eq!(after_trim.in_use, base.in_use);
    assert_eq!(
        after_trim.pooled + after_trim.free_slots,
        s.pooled + s.free_slots,
        "{after_trim:?}"
    );
}

#[test]
fn resident_bytes_fall_after_a_burst() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let held: Vec<_> = (0..500)
        .map(|_| {
            let s = Stack::new(256 * 1024).unwrap();
            // Touch 128 KiB of each, like a deep call chain would.
            for addr in (s.top() - 128 * 1024..s.top() - 64).step_by(4096) {
                // SAFETY: inside the usable part of a slot we own.
                unsafe { std::ptr::write_volatile(addr as *mut u8, 1) };
            }
            s
        })
        .collect();
    let during = corun_stacks::resident_bytes().unwrap();
    drop(held);
    corun_stacks::trim();
    let after = corun_stacks::resident_bytes().unwrap();
    eprintln!(
        "resident during burst {} KiB, after trim {} KiB",
        during / 1024,
        after / 1024
    );
    assert!(during >= 500 * 128 * 1024);
    assert!(
        after < during / 4,
        "resident {after} after trim vs {during} during"
    );
}

/// Counts are kept per shard of threads: a stack taken on one thread and
/// given back on another moves one shard up and another down, and the sums
/// must still be exact, here across 8 threads handing stacks around.
#[test]
fn counts_stay_exact_when_stacks_change_threads() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = stats();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Stack>>();
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let batch: Vec<_> = (0..40).map(|_| Stack::new(32 * 1024).unwrap()).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let givers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut held = 0;
                loop {
                    let next = rx.lock().unwrap().recv();
                    let Ok(batch) = next else { break };
                    held += batch.len();
                    drop(batch);
                }
                held
            })
        })
        .collect();
    for t in takers {
        t.join().unwrap();
    }
    let given: usize = givers.into_iter().map(|g| g.join().unwrap()).sum();
    assert_eq!(given, 4 * 50 * 40);
    let s = stats();
    assert_eq!(s.in_use, base.in_use, "{s:?}");
    // Every thread that cached stacks has exited and handed them back.
    assert!(s.pooled + s.free_slots >= 40, "{s:?}");
}

/// Threads own a counts shard each (updated without locked instructions)
/// while shards last; the rest share one with atomic adds, and an exiting
/// thread's shard goes to the next. Two waves of 48 threads, all alive at
/// once within a wave, so both kinds of shard and reuse are exercised.
#[test]
fn counts_stay_exact_with_more_threads_than_shards() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = stats();
    for _wave in 0..2 {
        let all_alive = std::sync::Arc::new(std::sync::Barrier::new(48));
        let threads: Vec<_> = (0..48)
            .map(|i| {
                let all_alive = all_alive.clone();
                std::thread::spawn(move || {
                    all_alive.wait();
                    for round in 0..1000 {
                        let batch: Vec<_> = (0..1 + (i + round) % 5)
                            .map(|_| Stack::new(32 * 1024).unwrap())
                            .collect();
                        drop(batch);
                    }
                    // One stack outlives its thread: released elsewhere.
                    Stack::new(32 * 1024).unwrap()
                })
            })
            .collect();
        let kept: Vec<Stack> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(stats().in_use, base.in_use + 48, "{:?}", stats());
        drop(kept);
        assert_eq!(stats().in_use, base.in_use, "{:?}", stats());
    }
}
