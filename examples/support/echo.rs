//! The echo server and load client shared by the `echo`, `echo_server` and
//! `echo_client` examples, and their command-line parsing.

// Each example uses only part of this module.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corun::net::{TcpListener, TcpStream};

/// Command-line options (`--name value` pairs), with defaults.
pub struct Args {
    pub addr: String,
    pub conns: usize,
    pub secs: f64,
    pub size: usize,
    pub workers: Option<usize>,
}

impl Args {
    /// Parses `--addr --conns --secs --size --workers`; exits with a
    /// usage message on anything else.
    pub fn parse(usage: &str) -> Args {
        let mut a = Args {
            addr: "127.0.0.1:7007".into(),
            conns: 100,
            secs: 5.0,
            size: 64,
            workers: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!("usage: {usage}");
                std::process::exit(0);
            }
            let Some(value) = it.next() else {
                fail(usage, &format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--addr" => a.addr = value,
                "--conns" => a.conns = number(usage, &flag, &value),
                "--secs" => a.secs = number(usage, &flag, &value),
                "--size" => a.size = number(usage, &flag, &value),
                "--workers" => a.workers = Some(number(usage, &flag, &value)),
                _ => fail(usage, &format!("unknown option {flag}")),
            }
        }
        if a.conns == 0 || a.size == 0 || a.secs.is_nan() || a.secs <= 0.0 {
            fail(usage, "--conns, --size and --secs must be positive");
        }
        a
    }
}

fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("{msg}\nusage: {usage}");
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(usage: &str, flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| fail(usage, &format!("bad value {value:?} for {flag}")))
}

/// Accepts forever, one coroutine per connection echoing what it reads.
/// A peer that misbehaves costs only its own coroutine.
pub fn serve(listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                corun::go!(move || echo(conn));
            }
            // Out of descriptors and the like: keep serving the others.
            Err(e) => {
                eprintln!("accept: {e}");
                corun::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn echo(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = [0u8; 16 * 1024];
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
}

/// What the load client measured.
pub struct Report {
    pub messages: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Round-trip latencies in nanoseconds, sorted.
    pub latencies: Vec<u64>,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        Duration::from_nanos(self.latencies[i])
    }

    pub fn print(&self) {
        let rate = self.messages as f64 / self.elapsed.as_secs_f64();
        println!(
            "{} messages in {:.2?}: {:.0} msg/s; latency p50 {:?} p99 {:?} p999 {:?}; errors {}",
            self.messages,
            self.elapsed,
            rate,
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
            self.errors,
        );
    }
}

/// `conns` coroutines each keep one `size`-byte message in flight for
/// `secs`, checking every echo; progress is printed every second.
pub fn load(addr: SocketAddr, conns: usize, secs: f64, size: usize) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|c| {
            let (stop, count, errors) = (stop.clone(), count.clone(), errors.clone());
            corun::go!(move || {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut s = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("connect: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        return lat;
                    }
                };
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut msg = vec![0u8; size];
                let mut back = vec![0u8; size];
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    msg[..8.min(size)].copy_from_slice(&seq.to_le_bytes()[..8.min(size)]);
                    msg[size - 1] = c as u8;
                    let t = Instant::now();
                    let ok = s.write_all(&msg).is_ok() && s.read_exact(&mut back).is_ok();
                    if !ok || back != msg {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return lat;
                    }
                    lat.push(t.elapsed().as_nanos() as u64);
                    count.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                }
                lat
            })
        })
        .collect();
    let end = start + Duration::from_secs_f64(secs);
    let mut last = 0;
    while Instant::now() < end {
        corun::sleep((end - Instant::now()).min(Duration::from_secs(1)));
        let now = count.load(Ordering::Relaxed);
        let st = corun::runtime::stats();
        println!(
            "  {:5.1}s  {:>8} msg/s  coroutines {:>5}  errors {}",
            start.elapsed().as_secs_f64(),
            now - last,
            st.coroutines,
            errors.load(Ordering::Relaxed),
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut latencies: Vec<u64> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    latencies.sort_unstable();
    Report {
        messages: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
    }
}

/// Coroutine and stack memory figures, for the end of a run.
pub fn print_memory() {
    let st = corun::runtime::stats();
    let stacks = corun::stacks::stats();
    let resident = corun::stacks::resident_bytes().unwrap_or(0);
    println!(
        "coroutines live {}, spawned {}; stacks in use {}, pooled {}, reserved {} MiB, resident {} KiB",
        st.coroutines,
        st.spawned,
        stacks.in_use,
        stacks.pooled,
        stacks.reserved_bytes >> 20,
        resident >> 10,
    );
}
