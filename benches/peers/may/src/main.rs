//! may's side of the peer comparison: `peers-may WORKLOAD N` or
//! `peers-may echo ADDR`, per `benches/peers/README.md`.
//!
//! may has no bounded or rendezvous channel: ping-pong, ring, skynet and
//! rss use its unbounded `mpsc` channel, `mpmc1024` its unbounded `mpmc`
//! channel (DESIGN.md's reference figure for may is the same), and
//! `mpmc0` is skipped. Workloads that need more live coroutines than may
//! can hold print SKIP with the limit measured here.

use std::io::{Read, Write};
use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::go;
use may::net::TcpListener;
use may::sync::{Mutex, mpmc, mpsc};

/// Live coroutines may holds here: each stack is its own mapping with a
/// guard page and vm.max_map_count is 65,530 (measured: 60,000 live ran,
/// 70,000 panicked in stack allocation).
const MAY_LIVE_LIMIT: u64 = 60_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (workload, arg) = match args.as_slice() {
        [_, w, a] => (w.clone(), a.clone()),
        _ => usage(),
    };
    if workload == "echo" {
        return echo(&arg);
    }
    let n: u64 = arg.parse().unwrap_or_else(|_| usage());
    may::config().set_workers(2);
    let w = workload.clone();
    let skip = move |why: &str| -> (f64, &'static str) {
        println!("{w} SKIP {why}");
        exit(0)
    };
    let live_limit = format!(
        "may panics past ~{MAY_LIVE_LIMIT} live coroutines (a mapping per stack, vm.max_map_count 65530)"
    );
    // Run inside a coroutine, as corun's and Go's main do.
    let name = workload.clone();
    let (value, unit) = go!(move || match name.as_str() {
        "spawn" if n > MAY_LIVE_LIMIT => skip(&live_limit),
        "spawn" => (per_op(spawn(n), n), "ns/op"),
        "yield" => (per_op(yield_switch(n), 2 * n), "ns/op"),
        "pingpong" => (per_op(ping_pong(n), n), "ns/op"),
        "mpmc1024" => (per_op(mpmc_unbounded(n), n), "ns/op"),
        "mpmc0" => skip("may has no unbuffered (rendezvous) channel"),
        "mutex" => (per_op(mutex(n), n), "ns/op"),
        "select4" => skip(
            "may's select! spawns a coroutine per arm on every call; no channel select to compare"
        ),
        "ring" => ring(n),
        "skynet" => skip(&format!("{live_limit}; skynet keeps up to 1,111,111 live")),
        "rss" if n > MAY_LIVE_LIMIT => skip(&live_limit),
        "rss" => (rss(n), "KB"),
        "sleeps" if n > MAY_LIVE_LIMIT => skip(&live_limit),
        "sleeps" => (sleeps(n).as_secs_f64() * 1e3, "ms"),
        _ => usage(),
    })
    .join()
    .unwrap();
    println!("{workload} {value:.1} {unit}");
}

fn usage() -> ! {
    eprintln!("usage: peers-may WORKLOAD N | peers-may echo ADDR (see benches/peers/README.md)");
    exit(2)
}

fn per_op(t: Duration, ops: u64) -> f64 {
    t.as_nanos() as f64 / ops.max(1) as f64
}

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("wrong result: {what}");
        exit(1);
    }
}

fn spawn(n: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| go!(move || i)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let t = start.elapsed();
    check(sum == n * n.saturating_sub(1) / 2, "spawn sum");
    t
}

fn yield_switch(n: u64) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            go!(move || {
                for _ in 0..n {
                    may::coroutine::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    start.elapsed()
}

fn ping_pong(n: u64) -> Duration {
    let (ping_s, ping_r) = mpsc::channel::<u64>();
    let (pong_s, pong_r) = mpsc::channel::<u64>();
    let echo = go!(move || {
        for v in ping_r.iter() {
            pong_s.send(v).unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        ping_s.send(i).unwrap();
        check(pong_r.recv().unwrap() == i, "ping-pong echo");
    }
    let t = start.elapsed();
    drop(ping_s);
    echo.join().unwrap();
    t
}

fn mpmc_unbounded(n: u64) -> Duration {
    let (s, r) = mpmc::channel::<u64>();
    let start = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let s = s.clone();
            go!(move || {
                for i in (p..n).step_by(4) {
                    s.send(i).unwrap();
                }
            })
        })
        .collect();
    drop(s);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            go!(move || {
                let mut sum = 0u64;
                while let Ok(v) = r.recv() {
                    sum += v;
                }
                sum
            })
        })
        .collect();
    drop(r);
    producers.into_iter().for_each(|h| h.join().unwrap());
    let sum: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let t = start.elapsed();
    check(sum == n * n.saturating_sub(1) / 2, "mpmc sum");
    t
}

fn mutex(n: u64) -> Duration {
    let each = n / 1000;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let hs: Vec<_> = (0..1000)
        .map(|_| {
            let counter = counter.clone();
            go!(move || {
                for _ in 0..each {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let t = start.elapsed();
    check(*counter.lock().unwrap() == each * 1000, "mutex count");
    t
}

const RING: u64 = 10_000;

fn ring(n: u64) -> (f64, &'static str) {
    let laps = n.div_ceil(RING).max(1);
    let (first, mut prev) = mpsc::channel::<u64>();
    let members: Vec<_> = (1..RING)
        .map(|_| {
            let (s, r) = mpsc::channel::<u64>();
            let from = std::mem::replace(&mut prev, r);
            go!(move || {
                for token in from.iter() {
                    if s.send(token + 1).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut token = 0;
    for _ in 0..laps {
        first.send(token).unwrap();
        token = prev.recv().unwrap();
    }
    let t = start.elapsed();
    check(token == laps * (RING - 1), "ring token");
    drop(first);
    members.into_iter().for_each(|h| h.join().unwrap());
    (per_op(t, laps * RING), "ns/op")
}

fn vm_rss_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss(n: u64) -> f64 {
    let before = vm_rss_kb();
    let (started_s, started_r) = mpsc::channel::<()>();
    let mut release = Vec::with_capacity(n as usize);
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (s, r) = mpsc::channel::<u64>();
            release.push(s);
            let started = started_s.clone();
            go!(move || {
                started.send(()).unwrap();
                r.recv().unwrap()
            })
        })
        .collect();
    for _ in 0..n {
        started_r.recv().unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let grown = vm_rss_kb() - before;
    for (i, s) in release.iter().enumerate() {
        s.send(i as u64).unwrap();
    }
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    check(sum == n * n.saturating_sub(1) / 2, "rss release sum");
    grown / n as f64
}

fn sleeps(n: u64) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..n)
        .map(|_| go!(|| may::coroutine::sleep(Duration::from_millis(10))))
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let t = start.elapsed();
    check(t >= Duration::from_millis(10), "sleeps too short");
    t
}

fn echo(addr: &str) {
    may::config().set_workers(1);
    let listener = TcpListener::bind(addr).expect("bind");
    eprintln!("may echo server on {}", listener.local_addr().unwrap());
    let server = go!(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            go!(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    server.join().unwrap();
}
