//! A token-bucket rate limiter on `tick`, Go's `time.Tick` idiom:
//! `cargo run --release --example rate_limiter -- --rate 500 --burst 20 --requests 300`.
//!
//! The bucket is a buffered channel of capacity `burst`. A coroutine adds
//! a token on every tick, dropping it when the bucket is full; a request
//! takes a token before it runs. Requests arriving after a quiet spell get
//! the burst at once, then the steady rate.

#[path = "support/flags.rs"]
mod flags;

use std::time::{Duration, Instant};

use corun::chan::{bounded, tick};
use corun::{go, select};
use flags::flag;

fn main() {
    let rate: u32 = flag("rate", 500);
    let burst: usize = flag("burst", 20);
    let requests: usize = flag("requests", 300);
    corun::run(move || {
        let (bucket, tokens) = bounded::<()>(burst);
        for _ in 0..burst {
            bucket.try_send(()).unwrap(); // start full
        }
        let (stop, stopped) = bounded::<()>(0);
        let filler = go!(move || {
            let ticks = tick(Duration::from_secs(1) / rate);
            loop {
                select! {
                    recv(ticks) -> _ => { let _ = bucket.try_send(()); }
                    recv(stopped) -> _ => return,
                }
            }
        });
        let start = Instant::now();
        let mut at = Vec::with_capacity(requests);
        for _ in 0..requests {
            tokens.recv().unwrap();
            at.push(start.elapsed());
        }
        let took = start.elapsed();
        drop(stop);
        filler.join().unwrap();
        let achieved = (requests - burst) as f64 / (took - at[burst - 1]).as_secs_f64();
        println!(
            "rate limiter: {requests} requests in {} ms; first {burst} (the burst) within {} ms, then {achieved:.0}/s (limit {rate}/s)",
            took.as_millis(),
            at[burst - 1].as_millis()
        );
        // Never faster than the rate allows (ticks can be late, not early).
        let floor = Duration::from_secs_f64((requests - burst) as f64 / rate as f64);
        assert!(took >= floor.mul_f64(0.95), "the limit was exceeded");
        println!("ok: never above the limit");
    });
}
