//! A coroutine leak, found by the coroutine profile.
//!
//! A "request handler" waits for a reply on a channel that, on one path
//! in five, nobody ever answers or closes: its coroutine stays parked
//! forever. Every 100 ms the example takes `coroutine_profile()` and looks
//! for a group (same spawn site and wait reason) that only grows and whose
//! oldest member keeps ageing: that is how a leak looks in Go's goroutine
//! profile, and here. It prints the suspect and exits 0, or exits 1 if it
//! found none.

use std::time::Duration;

use corun::chan::{Sender, bounded};
use corun::runtime::{CoroutineGroup, State, coroutine_profile};

fn handle_request(n: u64, backend: &Sender<(u64, Sender<u64>)>) {
    let (reply_tx, reply_rx) = bounded::<u64>(1);
    // The bug: a handler waits for a reply with no timeout...
    corun::go!(move || {
        let _ = reply_rx.recv();
    });
    backend.send((n, reply_tx)).unwrap();
}

fn main() {
    corun::run(|| {
        let (backend_tx, backend_rx) = bounded::<(u64, Sender<u64>)>(64);
        let mut forgotten = Vec::new();
        // ... and the backend forgets one request in five, keeping its
        // reply channel open (so the handler never sees a disconnect).
        corun::go!(move || {
            for (n, reply) in backend_rx.iter() {
                if n % 5 == 0 {
                    forgotten.push(reply);
                } else {
                    let _ = reply.send(n);
                }
            }
        });
        let mut history: Vec<Vec<CoroutineGroup>> = Vec::new();
        for round in 0..10u64 {
            for i in 0..100 {
                handle_request(round * 100 + i, &backend_tx);
            }
            corun::sleep(Duration::from_millis(100));
            history.push(coroutine_profile().groups);
        }
        let last = history.last().expect("ten rounds");
        let suspect = last.iter().find(|g| {
            g.state == State::Waiting
                && history
                    .windows(2)
                    .all(|w| count_of(&w[1], g) > count_of(&w[0], g))
        });
        match suspect {
            Some(g) => {
                let first = count_of(&history[0], g);
                println!(
                    "leak suspect: {} coroutines spawned at {} waiting on [{}], oldest {:.1?}, \
                     growing by ~{} per 100 ms (from {first})",
                    g.count,
                    g.spawn_site,
                    g.wait_reason,
                    g.oldest,
                    (g.count - first) / (history.len() - 1),
                );
                print!("\n{}", coroutine_profile());
            }
            None => {
                println!("no growing group found:\n{}", coroutine_profile());
                std::process::exit(1);
            }
        }
        // The program exits here; the leaked coroutines simply stop with it.
        std::process::exit(0);
    });
}

fn count_of(groups: &[CoroutineGroup], like: &CoroutineGroup) -> usize {
    groups
        .iter()
        .find(|g| g.spawn_site == like.spawn_site && g.wait_reason == like.wait_reason)
        .map_or(0, |g| g.count)
}
