//! corun's side of the peer comparison: `peers-corun WORKLOAD N` or
//! `peers-corun echo ADDR`, per `benches/peers/README.md`.

use std::io::{Read, Write};
use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corun::chan::{Receiver, Sender, bounded};
use corun::net::TcpListener;
use corun::select;
use corun::sync::Mutex;
use corun::{Runtime, go};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (workload, arg) = match args.as_slice() {
        [_, w, a] => (w.as_str(), a.as_str()),
        _ => usage(),
    };
    if workload == "echo" {
        return echo(arg);
    }
    let n: u64 = arg.parse().unwrap_or_else(|_| usage());
    let rt = Runtime::builder().workers(2).build().expect("runtime");
    let name = workload.to_string();
    let (value, unit) = rt.block_on(move || match name.as_str() {
        "spawn" => (per_op(spawn(n), n), "ns/op"),
        "yield" => (per_op(yield_switch(n), 2 * n), "ns/op"),
        "pingpong" => (per_op(ping_pong(n), n), "ns/op"),
        "mpmc1024" => (per_op(mpmc(n, 1024), n), "ns/op"),
        "mpmc0" => (per_op(mpmc(n, 0), n), "ns/op"),
        "mutex" => (per_op(mutex(n), n), "ns/op"),
        "select4" => (per_op(select4(n), n), "ns/op"),
        "ring" => ring(n),
        "skynet" => (skynet().as_secs_f64() * 1e3, "ms"),
        "rss" => (rss(n), "KB"),
        "sleeps" => (sleeps(n).as_secs_f64() * 1e3, "ms"),
        _ => usage(),
    });
    println!("{workload} {value:.1} {unit}");
}

fn usage() -> ! {
    eprintln!(
        "usage: peers-corun WORKLOAD N | peers-corun echo ADDR (see benches/peers/README.md)"
    );
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
                    corun::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    start.elapsed()
}

fn ping_pong(n: u64) -> Duration {
    let (ping_s, ping_r) = bounded::<u64>(0);
    let (pong_s, pong_r) = bounded::<u64>(0);
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

fn mpmc(n: u64, cap: usize) -> Duration {
    let (s, r) = bounded::<u64>(cap);
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
            go!(move || r.iter().sum::<u64>())
        })
        .collect();
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

fn select4(n: u64) -> Duration {
    let (ss, rs): (Vec<Sender<u64>>, Vec<Receiver<u64>>) = (0..4).map(|_| bounded(0)).unzip();
    let sender = go!(move || {
        for i in 0..n {
            ss[(i % 4) as usize].send(i).unwrap();
        }
    });
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        select! {
            recv(rs[0]) -> v => sum += v.unwrap(),
            recv(rs[1]) -> v => sum += v.unwrap(),
            recv(rs[2]) -> v => sum += v.unwrap(),
            recv(rs[3]) -> v => sum += v.unwrap(),
        }
    }
    let t = start.elapsed();
    sender.join().unwrap();
    check(sum == n * n.saturating_sub(1) / 2, "select sum");
    t
}

const RING: u64 = 10_000;

fn ring(n: u64) -> (f64, &'static str) {
    let laps = n.div_ceil(RING).max(1);
    let (first, mut prev) = bounded::<u64>(0);
    let members: Vec<_> = (1..RING)
        .map(|_| {
            let (s, r) = bounded::<u64>(0);
            let from = std::mem::replace(&mut prev, r);
            go!(move || {
                for token in from.iter() {
                    s.send(token + 1).unwrap();
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

fn skynet() -> Duration {
    fn node(num: u64, size: u64, parent: Sender<u64>) {
        if size == 1 {
            parent.send(num).unwrap();
            return;
        }
        let (s, r) = bounded::<u64>(0);
        let child = size / 10;
        for i in 0..10 {
            let s = s.clone();
            go!(move || node(num + i * child, child, s));
        }
        drop(s);
        parent.send(r.iter().take(10).sum()).unwrap();
    }
    let start = Instant::now();
    let (s, r) = bounded::<u64>(0);
    go!(move || node(0, 1_000_000, s));
    let sum = r.recv().unwrap();
    let t = start.elapsed();
    check(sum == 499_999_500_000, "skynet sum");
    t
}

fn vm_rss_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss(n: u64) -> f64 {
    let before = vm_rss_kb();
    let (started_s, started_r) = bounded::<()>(1024);
    let mut release = Vec::with_capacity(n as usize);
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (s, r) = bounded::<u64>(0);
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
    corun::sleep(Duration::from_millis(100));
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
        .map(|_| go!(|| corun::sleep(Duration::from_millis(10))))
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let t = start.elapsed();
    check(t >= Duration::from_millis(10), "sleeps too short");
    t
}

fn echo(addr: &str) {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let addr = addr.to_string();
    rt.block_on(move || {
        let listener = TcpListener::bind(&addr).expect("bind");
        eprintln!("corun echo server on {}", listener.local_addr().unwrap());
        loop {
            let Ok((mut conn, _)) = listener.accept() else {
                continue;
            };
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
}
