//! Producers and consumers on one bounded channel, Go style:
//! `cargo run --release --example producer_consumer -- --producers 4 --consumers 3 --items 100000`.
//!
//! Closing is done by dropping the senders: when the last producer is
//! done, each consumer's `for item in rx.iter()` ends, as `for v := range
//! ch` does after `close(ch)`. Every item is counted exactly once.

#[path = "support/flags.rs"]
mod flags;

use std::time::Instant;

use corun::chan::bounded;
use corun::go;
use flags::flag;

fn main() {
    let producers: u64 = flag("producers", 4);
    let consumers: usize = flag("consumers", 3);
    let items: u64 = flag("items", 100_000);
    let cap: usize = flag("cap", 64);
    corun::run(move || {
        let (tx, rx) = bounded::<u64>(cap);
        let start = Instant::now();
        for p in 0..producers {
            let tx = tx.clone();
            go!(move || {
                for i in (p..items).step_by(producers as usize) {
                    tx.send(i).unwrap();
                }
            });
        }
        drop(tx); // only the producers hold senders now
        let counts: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = rx.clone();
                go!(move || rx.iter().fold((0u64, 0u64), |(n, sum), v| (n + 1, sum + v)))
            })
            .collect();
        let mut per_consumer = Vec::new();
        let (mut n, mut sum) = (0, 0);
        for c in counts {
            let (cn, csum) = c.join().unwrap();
            per_consumer.push(cn);
            n += cn;
            sum += csum;
        }
        assert_eq!(n, items, "items lost or duplicated");
        assert_eq!(sum, items * (items - 1) / 2, "items corrupted");
        println!(
            "producer/consumer: {items} items from {producers} producers in {:.1} ms, per consumer {per_consumer:?}",
            start.elapsed().as_secs_f64() * 1e3
        );
        println!("ok: every item received exactly once");
    });
}
