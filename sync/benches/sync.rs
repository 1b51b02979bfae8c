//! Lock and WaitGroup benchmarks inside a corun runtime with 2 workers
//! (the DESIGN.md targets are measured with 2 workers on a 2-core machine).

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corun_runtime::Runtime;
use corun_sync::sync::{Mutex, RwLock, WaitGroup};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::builder().workers(2).build().expect("runtime"))
}

/// Runs `per` rounds of `op` in each of `n` coroutines; total time.
fn fan<F>(n: u64, per: u64, op: F) -> Duration
where
    F: Fn(u64) + Send + Sync + 'static,
{
    rt().block_on(move || {
        let op = Arc::new(op);
        let start = Instant::now();
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let op = op.clone();
                corun_runtime::spawn(move || {
                    for k in 0..per {
                        op(i * per + k);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        start.elapsed()
    })
}

/// Go's contended-mutex figure: 1,000 goroutines incrementing one counter
/// under one lock; time per lock/unlock.
fn contended_mutex(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.measurement_time(Duration::from_secs(4)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("mutex_contended_1000_coroutines_per_lock", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(1000).max(1);
            let m = Arc::new(Mutex::new(0u64));
            let t = fan(1000, per, move |_| *m.lock().unwrap() += 1);
            t.mul_f64(iters as f64 / (per * 1000) as f64)
        })
    });
    // Reference: std's futex mutex in the same setting (blocks the worker
    // thread instead of parking the coroutine).
    g.bench_function("std_mutex_contended_1000_coroutines_per_lock", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(1000).max(1);
            let m = Arc::new(std::sync::Mutex::new(0u64));
            let t = fan(1000, per, move |_| *m.lock().unwrap() += 1);
            t.mul_f64(iters as f64 / (per * 1000) as f64)
        })
    });
    g.finish();
}

/// Lock and unlock with nobody else around, on a plain thread.
fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.measurement_time(Duration::from_secs(2)).sample_size(30);
    let m = Mutex::new(0u64);
    g.bench_function("mutex_uncontended_lock_unlock", |b| {
        b.iter(|| *black_box(&m).lock().unwrap() += 1)
    });
    let l = RwLock::new(0u64);
    g.bench_function("rwlock_uncontended_read", |b| {
        b.iter(|| black_box(*black_box(&l).read().unwrap()))
    });
    g.bench_function("rwlock_uncontended_write", |b| {
        b.iter(|| *black_box(&l).write().unwrap() += 1)
    });
    g.finish();
}

/// 1,000 coroutines on one RwLock, one write per 100 operations; time per
/// operation.
fn rwlock_read_mostly(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.measurement_time(Duration::from_secs(4)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("rwlock_read_mostly_1000_coroutines_per_op", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(1000).max(1);
            let l = Arc::new(RwLock::new([0u64; 8]));
            let t = fan(1000, per, move |k| {
                if k % 100 == 0 {
                    l.write().unwrap()[(k % 8) as usize] += 1;
                } else {
                    black_box(l.read().unwrap().iter().sum::<u64>());
                }
            });
            t.mul_f64(iters as f64 / (per * 1000) as f64)
        })
    });
    g.finish();
}

/// Spawn 10,000 coroutines that each call `done`, and wait: time per
/// fan-out (spawn included, as in Go's version of this pattern).
fn waitgroup_fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.measurement_time(Duration::from_secs(4)).sample_size(20);
    g.bench_function("waitgroup_fan_out_10000", |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let wg = WaitGroup::new();
                    for _ in 0..10_000 {
                        wg.add(1);
                        let wg = wg.clone();
                        drop(corun_runtime::spawn(move || wg.done()));
                    }
                    wg.wait();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    contended_mutex,
    uncontended,
    rwlock_read_mostly,
    waitgroup_fan_out
);
criterion_main!(benches);
