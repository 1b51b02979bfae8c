//! Channel benchmarks inside a corun runtime with 2 workers (the DESIGN.md
//! targets are measured with 2 workers on a 2-core machine).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use corun_runtime::Runtime;
use corun_sync::chan::{Receiver, Sender, bounded, select, unbounded};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::builder().workers(2).build().expect("runtime"))
}

/// Unbuffered ping-pong between two coroutines: time per round trip.
fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("chan");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("pingpong_unbuffered_round_trip", |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let (ping_s, ping_r) = bounded::<u64>(0);
                let (pong_s, pong_r) = bounded::<u64>(0);
                let echo = corun_runtime::spawn(move || {
                    for v in ping_r.iter() {
                        pong_s.send(v).unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    ping_s.send(i).unwrap();
                    pong_r.recv().unwrap();
                }
                let t = start.elapsed();
                drop(ping_s);
                echo.join().unwrap();
                t
            })
        })
    });
    g.finish();
}

/// 4 producers x 4 consumers on one channel: time per message.
fn mpmc(c: &mut Criterion, name: &str, channel: fn() -> (Sender<u64>, Receiver<u64>)) {
    let mut g = c.benchmark_group("chan");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("mpmc_4x4_{name}_per_msg"), |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let per = iters.div_ceil(4);
                let (s, r) = channel();
                let start = Instant::now();
                let producers: Vec<_> = (0..4)
                    .map(|_| {
                        let s = s.clone();
                        corun_runtime::spawn(move || {
                            for i in 0..per {
                                s.send(i).unwrap();
                            }
                        })
                    })
                    .collect();
                drop(s);
                let consumers: Vec<_> = (0..4)
                    .map(|_| {
                        let r = r.clone();
                        corun_runtime::spawn(move || r.iter().count() as u64)
                    })
                    .collect();
                for p in producers {
                    p.join().unwrap();
                }
                let got: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
                let t = start.elapsed();
                assert_eq!(got, per * 4);
                t.mul_f64(iters as f64 / (per * 4) as f64)
            })
        })
    });
    g.finish();
}

fn mpmc_buffered(c: &mut Criterion) {
    mpmc(c, "cap1024", || bounded(1024));
}

fn mpmc_unbuffered(c: &mut Criterion) {
    mpmc(c, "cap0", || bounded(0));
}

/// As above on an unbounded channel, whose buffer grows as far as the
/// producers get ahead. Go has no unbounded channel to compare with.
fn mpmc_unbounded(c: &mut Criterion) {
    mpmc(c, "unbounded", unbounded);
}

/// A receiver selecting over 4 unbuffered channels, fed round-robin by one
/// sender coroutine: time per select.
fn select4(c: &mut Criterion) {
    let mut g = c.benchmark_group("chan");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("select_4_unbuffered_per_select", |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let (ss, rs): (Vec<Sender<u64>>, Vec<Receiver<u64>>) =
                    (0..4).map(|_| bounded::<u64>(0)).unzip();
                let sender = corun_runtime::spawn(move || {
                    for i in 0..iters {
                        ss[(i % 4) as usize].send(i).unwrap();
                    }
                });
                let start = Instant::now();
                let mut sum = 0u64;
                for _ in 0..iters {
                    select! {
                        recv(rs[0]) -> v => sum += v.unwrap(),
                        recv(rs[1]) -> v => sum += v.unwrap(),
                        recv(rs[2]) -> v => sum += v.unwrap(),
                        recv(rs[3]) -> v => sum += v.unwrap(),
                    }
                }
                let t = start.elapsed();
                sender.join().unwrap();
                assert_eq!(sum, iters * iters.saturating_sub(1) / 2);
                t
            })
        })
    });
    g.finish();
}

/// A ring of 10,000 coroutines joined by unbuffered channels passes a token
/// around: time per hop.
fn ring(c: &mut Criterion) {
    const RING: usize = 10_000;
    let mut g = c.benchmark_group("chan");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("ring_10k_per_hop", |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let laps = iters.div_ceil(RING as u64);
                let (first_s, mut prev_r) = bounded::<u64>(0);
                let mut members = Vec::with_capacity(RING - 1);
                for _ in 1..RING {
                    let (s, r) = bounded::<u64>(0);
                    let from = std::mem::replace(&mut prev_r, r);
                    members.push(corun_runtime::spawn(move || {
                        for token in from.iter() {
                            s.send(token + 1).unwrap();
                        }
                    }));
                }
                let start = Instant::now();
                let mut token = 0;
                for _ in 0..laps {
                    first_s.send(token).unwrap();
                    token = prev_r.recv().unwrap();
                }
                let t = start.elapsed();
                assert_eq!(token, laps * (RING as u64 - 1));
                drop(first_s);
                for m in members {
                    m.join().unwrap();
                }
                // Report per hop, for the hops actually made.
                t.mul_f64(iters as f64 / (laps * RING as u64) as f64)
            })
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    pingpong,
    mpmc_buffered,
    mpmc_unbuffered,
    mpmc_unbounded,
    select4,
    ring
);
criterion_main!(benches);
