//! Scheduler benchmarks: spawn+join, yield switch, skynet, mass sleeps,
//! the accuracy of one sleep.
//!
//! Each runs on a 2-worker runtime, as the DESIGN.md reference figures do.
//! Per-element throughput is reported, so "time per element" reads as ns
//! per coroutine (spawn), per yield, per sleeper.

use std::time::{Duration, Instant};

use corun_runtime::{Runtime, go};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

fn spawn_join(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("spawn_join");
    g.sample_size(10);
    for n in [10_000u64, 1_000_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                rt.block_on(move || {
                    let hs: Vec<_> = (0..n).map(|i| go!(move || i)).collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
        });
    }
}

fn yield_switch(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("yield");
    const N: u64 = 100_000;
    // Two coroutines each yield N times: 2N yields per iteration.
    g.throughput(Throughput::Elements(2 * N));
    g.bench_function("2_coroutines", |b| {
        b.iter(|| {
            rt.block_on(|| {
                let hs: Vec<_> = (0..2)
                    .map(|_| go!(|| (0..N).for_each(|_| corun_runtime::yield_now())))
                    .collect();
                hs.into_iter().for_each(|h| h.join().unwrap());
            })
        })
    });
}

fn skynet(num: u64, size: u64, div: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let hs: Vec<_> = (0..div)
        .map(|i| {
            let sub = size / div;
            go!(move || skynet(num + i * sub, sub, div))
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

fn skynet_bench(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("skynet");
    g.sample_size(10);
    g.bench_function("1M", |b| {
        b.iter(|| assert_eq!(rt.block_on(|| skynet(0, 1_000_000, 10)), 499_999_500_000))
    });
}

fn sleeps(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("sleep");
    g.sample_size(10);
    const N: u64 = 100_000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("100k_x_10ms", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                rt.block_on(|| {
                    let hs: Vec<_> = (0..N)
                        .map(|_| go!(|| corun_runtime::sleep(Duration::from_millis(10))))
                        .collect();
                    hs.into_iter().for_each(|h| h.join().unwrap());
                });
            }
            t.elapsed()
        })
    });
}

/// Timer accuracy: how long a coroutine asking for 200 us actually sleeps
/// on an otherwise idle runtime (the OS's own wake-up latency included;
/// a poller that misses the timer shows up as a millisecond tail).
fn sleep_accuracy(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("sleep");
    g.bench_function("one_200us", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    corun_runtime::sleep(Duration::from_micros(200));
                }
                t.elapsed()
            })
        })
    });
}

criterion_group!(
    benches,
    spawn_join,
    yield_switch,
    skynet_bench,
    sleeps,
    sleep_accuracy
);
criterion_main!(benches);
