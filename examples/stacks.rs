//! The stack demo: park many coroutines at once and show what they cost.
//!
//! `cargo run --release --example stacks [-- COUNT]` (default 100,000):
//! spawns COUNT coroutines that each touch a little stack and park, prints
//! the memory and mapping cost per parked coroutine, wakes them all, and
//! shows the pool giving the memory back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corun::runtime::{WaitReason, park, unparker};

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("usage: stacks [COUNT]  (COUNT: a number of coroutines, e.g. 100000)");
            std::process::exit(2)
        }),
        None => 100_000,
    };
    let (rss0, maps0) = (rss(), maps());
    let stop = Arc::new(AtomicBool::new(false));
    let waiters = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (stop, waiters) = (stop.clone(), waiters.clone());
            corun::go!(move || {
                // A little real stack use before parking.
                let scratch = std::hint::black_box([i as u8; 512]);
                waiters.lock().unwrap().push(unparker());
                while !stop.load(Ordering::Acquire) {
                    park(WaitReason::Park);
                }
                scratch[7] as usize
            })
        })
        .collect();
    while waiters.lock().unwrap().len() < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let parked_in = t.elapsed();
    let s = corun::runtime::stats();
    let st = corun::stacks::stats();
    let resident = corun::stacks::resident_bytes().unwrap_or(0);
    println!("{n} coroutines parked in {parked_in:?} on {} workers", s.ps);
    println!(
        "  process RSS growth per coroutine: {} B (stack pages resident: {} B each)",
        (rss() - rss0) / n,
        resident / n
    );
    println!(
        "  memory mappings: {maps0} -> {} (guards: {:?}); address space reserved: {} GiB",
        maps(),
        st.guard_mode,
        st.reserved_bytes >> 30
    );
    println!(
        "  coroutines waiting: {}, stacks in use: {}",
        s.waiting, st.in_use
    );

    let t = Instant::now();
    stop.store(true, Ordering::Release);
    for u in waiters.lock().unwrap().drain(..) {
        u.unpark();
    }
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    corun::stacks::trim();
    println!("woke and joined all in {:?} (checksum {sum})", t.elapsed());
    println!(
        "after the burst: stack pages resident {} KiB, stacks pooled {}",
        corun::stacks::resident_bytes().unwrap_or(0) / 1024,
        corun::stacks::stats().pooled
    );
}
