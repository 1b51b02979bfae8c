//! tokio's side of the peer comparison: `peers-tokio WORKLOAD N` or
//! `peers-tokio echo ADDR`, per `benches/peers/README.md`.
//!
//! tokio has no unbuffered channel: ping-pong, select4 and ring use
//! `mpsc::channel(1)`, the closest rendezvous it offers; its mpsc has one
//! consumer, so `mpmc1024` is 4 producers into 1 consumer and `mpmc0` is
//! skipped.

use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let name = workload.clone();
    let result = rt.block_on(async move {
        // Run on a worker, as corun's and Go's main coroutine does.
        tokio::spawn(async move {
            Some(match name.as_str() {
                "spawn" => (per_op(spawn(n).await, n), "ns/op"),
                "yield" => (per_op(yield_switch(n).await, 2 * n), "ns/op"),
                "pingpong" => (per_op(ping_pong(n).await, n), "ns/op"),
                "mpmc1024" => (per_op(mpsc_4_to_1(n).await, n), "ns/op"),
                "mpmc0" => return None,
                "mutex" => (per_op(mutex(n).await, n), "ns/op"),
                "select4" => (per_op(select4(n).await, n), "ns/op"),
                "ring" => ring(n).await,
                "skynet" => (skynet().await.as_secs_f64() * 1e3, "ms"),
                "rss" => (rss(n).await, "KB"),
                "sleeps" => (sleeps(n).await.as_secs_f64() * 1e3, "ms"),
                _ => usage(),
            })
        })
        .await
        .unwrap()
    });
    match result {
        Some((value, unit)) => println!("{workload} {value:.1} {unit}"),
        None => println!("{workload} SKIP tokio has no unbuffered (rendezvous) channel"),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: peers-tokio WORKLOAD N | peers-tokio echo ADDR (see benches/peers/README.md)"
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

async fn spawn(n: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    let t = start.elapsed();
    check(sum == n * n.saturating_sub(1) / 2, "spawn sum");
    t
}

async fn yield_switch(n: u64) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    start.elapsed()
}

async fn ping_pong(n: u64) -> Duration {
    let (ping_s, mut ping_r) = mpsc::channel::<u64>(1);
    let (pong_s, mut pong_r) = mpsc::channel::<u64>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = ping_r.recv().await {
            pong_s.send(v).await.unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        ping_s.send(i).await.unwrap();
        check(pong_r.recv().await == Some(i), "ping-pong echo");
    }
    let t = start.elapsed();
    drop(ping_s);
    echo.await.unwrap();
    t
}

async fn mpsc_4_to_1(n: u64) -> Duration {
    let (s, mut r) = mpsc::channel::<u64>(1024);
    let start = Instant::now();
    for p in 0..4 {
        let s = s.clone();
        tokio::spawn(async move {
            for i in (p..n).step_by(4) {
                s.send(i).await.unwrap();
            }
        });
    }
    drop(s);
    let mut sum = 0;
    while let Some(v) = r.recv().await {
        sum += v;
    }
    let t = start.elapsed();
    check(sum == n * n.saturating_sub(1) / 2, "mpsc sum");
    t
}

async fn mutex(n: u64) -> Duration {
    let each = n / 1000;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let hs: Vec<_> = (0..1000)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    *counter.lock().await += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    let t = start.elapsed();
    check(*counter.lock().await == each * 1000, "mutex count");
    t
}

async fn select4(n: u64) -> Duration {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let (s, r) = mpsc::channel::<u64>(1);
        senders.push(s);
        receivers.push(r);
    }
    let sender = tokio::spawn(async move {
        for i in 0..n {
            senders[(i % 4) as usize].send(i).await.unwrap();
        }
    });
    let [mut a, mut b, mut c, mut d]: [mpsc::Receiver<u64>; 4] = receivers.try_into().unwrap();
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        tokio::select! {
            Some(v) = a.recv() => sum += v,
            Some(v) = b.recv() => sum += v,
            Some(v) = c.recv() => sum += v,
            Some(v) = d.recv() => sum += v,
        }
    }
    let t = start.elapsed();
    sender.await.unwrap();
    check(sum == n * n.saturating_sub(1) / 2, "select sum");
    t
}

const RING: u64 = 10_000;

async fn ring(n: u64) -> (f64, &'static str) {
    let laps = n.div_ceil(RING).max(1);
    let (first, mut prev) = mpsc::channel::<u64>(1);
    let mut members = Vec::new();
    for _ in 1..RING {
        let (s, r) = mpsc::channel::<u64>(1);
        let mut from = std::mem::replace(&mut prev, r);
        members.push(tokio::spawn(async move {
            while let Some(token) = from.recv().await {
                s.send(token + 1).await.unwrap();
            }
        }));
    }
    let start = Instant::now();
    let mut token = 0;
    for _ in 0..laps {
        first.send(token).await.unwrap();
        token = prev.recv().await.unwrap();
    }
    let t = start.elapsed();
    check(token == laps * (RING - 1), "ring token");
    drop(first);
    for m in members {
        m.await.unwrap();
    }
    (per_op(t, laps * RING), "ns/op")
}

async fn skynet() -> Duration {
    fn node(num: u64, size: u64, parent: mpsc::Sender<u64>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if size == 1 {
                parent.send(num).await.unwrap();
                return;
            }
            let (s, mut r) = mpsc::channel::<u64>(1);
            let child = size / 10;
            for i in 0..10 {
                node(num + i * child, child, s.clone());
            }
            drop(s);
            let mut sum = 0;
            while let Some(v) = r.recv().await {
                sum += v;
            }
            parent.send(sum).await.unwrap();
        })
    }
    let start = Instant::now();
    let (s, mut r) = mpsc::channel::<u64>(1);
    node(0, 1_000_000, s);
    let sum = r.recv().await.unwrap();
    let t = start.elapsed();
    check(sum == 499_999_500_000, "skynet sum");
    t
}

fn vm_rss_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn rss(n: u64) -> f64 {
    let before = vm_rss_kb();
    let (started_s, mut started_r) = mpsc::channel::<()>(1024);
    let mut release = Vec::with_capacity(n as usize);
    let mut hs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (s, r) = oneshot::channel::<u64>();
        release.push(s);
        let started = started_s.clone();
        hs.push(tokio::spawn(async move {
            started.send(()).await.unwrap();
            r.await.unwrap()
        }));
    }
    for _ in 0..n {
        started_r.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = vm_rss_kb() - before;
    for (i, s) in release.into_iter().enumerate() {
        s.send(i as u64).unwrap();
    }
    let mut sum = 0;
    for h in hs {
        sum += h.await.unwrap();
    }
    check(sum == n * n.saturating_sub(1) / 2, "rss release sum");
    grown / n as f64
}

async fn sleeps(n: u64) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..n)
        .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(10))))
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    let t = start.elapsed();
    check(t >= Duration::from_millis(10), "sleeps too short");
    t
}

fn echo(addr: &str) {
    // One worker: the runtime's current-thread flavour does the work on
    // the thread that calls block_on, as one corun worker does.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap();
        eprintln!("tokio echo server on {}", listener.local_addr().unwrap());
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let _ = conn.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}
