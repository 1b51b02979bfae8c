//! Torture suites: random mixes of everything, checked for lost or
//! duplicated messages, coroutines that never finish, timers that fire
//! early or after cancellation, leaked descriptors and memory that does not
//! come back.
//!
//! Each suite runs for `CORUN_TORTURE_SECS` seconds (default 5, for CI:
//! races that need seconds to show, like the stale-wake one in
//! `docs/reliability.md`, get a real chance on every run); the long run is
//! `CORUN_TORTURE_SECS=600 cargo test --release --test torture -- --nocapture --test-threads=1`.
//! Suites take a process-wide lock: descriptor and memory baselines need
//! the process to themselves.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use corun::chan::{self, Receiver, Sender, select};
use corun::net::{TcpListener, TcpStream};
use corun::runtime::Timer;
use corun::{Builder, Runtime, go};

fn secs() -> Duration {
    let s: f64 = std::env::var("CORUN_TORTURE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(s)
}

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// xorshift: cheap, seeded per actor, reproducible per seed.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// What a producer sent, and what it got back unsent.
type Produced = (Vec<u64>, Vec<u64>);

/// Producers and consumers (coroutines and threads) on channels of every
/// capacity, with every kind of send and receive, select, random early
/// close and dropped receivers.
#[test]
fn channel_torture() {
    let _serial = serial();
    let rt = runtime();
    let deadline = Instant::now() + secs();
    const CHANNELS: usize = 8;
    let caps = [Some(0), Some(1), Some(16), None];
    let (senders, receivers): (Vec<Sender<u64>>, Vec<Receiver<u64>>) = (0..CHANNELS)
        .map(|i| match caps[i % caps.len()] {
            Some(c) => chan::bounded(c),
            None => chan::unbounded(),
        })
        .unzip();
    let senders = Arc::new(senders);
    let receivers = Arc::new(receivers);
    let stop_producing = Arc::new(AtomicBool::new(false));

    // A producer returns (ids sent, ids handed back by a closed channel).
    let producer = {
        let senders = senders.clone();
        let stop = stop_producing.clone();
        move |p: u64| {
            let mut rng = Rng::new(p + 1);
            let (mut sent, mut back) = (Vec::new(), Vec::new());
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = p << 32 | seq;
                seq += 1;
                let a = &senders[rng.below(CHANNELS as u64) as usize];
                let b = &senders[rng.below(CHANNELS as u64) as usize];
                let outcome: Result<(), u64> = match rng.below(4) {
                    0 => a.send(id).map_err(|e| e.into_inner()),
                    1 => match a.send_timeout(id, Duration::from_micros(rng.below(200))) {
                        Ok(()) => Ok(()),
                        Err(chan::SendTimeoutError::Timeout(v)) => {
                            back.push(v); // not sent: timed out
                            continue;
                        }
                        Err(chan::SendTimeoutError::Disconnected(v)) => Err(v),
                    },
                    2 => match a.try_send(id) {
                        Ok(()) => Ok(()),
                        Err(chan::TrySendError::Full(v)) => {
                            back.push(v);
                            continue;
                        }
                        Err(chan::TrySendError::Disconnected(v)) => Err(v),
                    },
                    _ => select! {
                        send(a, id) -> r => r.map_err(|e| e.into_inner()),
                        send(b, id) -> r => r.map_err(|e| e.into_inner()),
                        default(Duration::from_micros(100)) => { back.push(id); continue; }
                    },
                };
                match outcome {
                    Ok(()) => sent.push(id),
                    Err(v) => {
                        assert_eq!(v, id, "a failed send hands back its own value");
                        back.push(v);
                    }
                }
            }
            (sent, back)
        }
    };
    // A consumer returns what it received, until every channel is done.
    let consumer = {
        let receivers = receivers.clone();
        move |c: u64| {
            let mut rng = Rng::new(1000 + c);
            let mut got = Vec::new();
            let mut done = [false; CHANNELS];
            while done.iter().any(|d| !d) {
                let i = rng.below(CHANNELS as u64) as usize;
                if done[i] {
                    continue;
                }
                let r = &receivers[i];
                let j = (i + 1) % CHANNELS;
                let res = match rng.below(4) {
                    0 => r
                        .recv_timeout(Duration::from_micros(500))
                        .map_err(|e| e.is_disconnected()),
                    1 => r.try_recv().map_err(|e| e.is_disconnected()),
                    2 => select! {
                        recv(r) -> v => v.map_err(|_| true),
                        recv(receivers[j]) -> v => match v {
                            Ok(v) => Ok(v),
                            Err(_) => { done[j] = true; continue; }
                        },
                        default(Duration::from_micros(300)) => Err(false),
                    },
                    _ => {
                        let mut sel = chan::Select::new();
                        sel.recv(r);
                        match sel.ready_timeout(Duration::from_micros(300)) {
                            Ok(_) => r.try_recv().map_err(|e| e.is_disconnected()),
                            Err(_) => Err(false),
                        }
                    }
                };
                match res {
                    Ok(v) => got.push(v),
                    Err(true) => done[i] = true,
                    Err(false) => {}
                }
            }
            got
        }
    };
    let (coroutine_producers, coroutine_consumers) = (500u64, 500u64);
    let mut producers: Vec<Box<dyn FnOnce() -> Produced>> = Vec::new();
    for p in 0..coroutine_producers {
        let f = producer.clone();
        let h = rt.spawn(move || f(p));
        producers.push(Box::new(move || h.join().unwrap()));
    }
    for p in 0..2 {
        let f = producer.clone();
        let h = std::thread::spawn(move || f(coroutine_producers + p));
        producers.push(Box::new(move || h.join().unwrap()));
    }
    let mut consumers: Vec<Box<dyn FnOnce() -> Vec<u64>>> = Vec::new();
    for c in 0..coroutine_consumers {
        let f = consumer.clone();
        let h = rt.spawn(move || f(c));
        consumers.push(Box::new(move || h.join().unwrap()));
    }
    for c in 0..2 {
        let f = consumer.clone();
        let h = std::thread::spawn(move || f(coroutine_consumers + c));
        consumers.push(Box::new(move || h.join().unwrap()));
    }
    // Close two channels early, at random moments, while traffic flows.
    let mut rng = Rng::new(7);
    for i in [rng.below(CHANNELS as u64), rng.below(CHANNELS as u64)] {
        std::thread::sleep(secs() / 4);
        senders[i as usize].close();
    }
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_producing.store(true, Ordering::Relaxed);
    // A watchdog: if producers do not finish, show who waits on what and
    // fail, rather than hang (this is how the lost wake-up of a reserved
    // slot handed directly to a receiver was found).
    let watchdog_done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = watchdog_done.clone();
        rt.spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > Duration::from_secs(20) {
                    eprintln!("producers stuck; coroutines:\n{}", corun::runtime::dump());
                    std::process::exit(3);
                }
                corun::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut sent = Vec::new();
    let mut handed_back = 0;
    for p in producers {
        let (s, b) = p();
        sent.extend(s);
        handed_back += b.len();
    }
    watchdog_done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    // Every producer is done: close everything so consumers drain and end.
    for s in senders.iter() {
        s.close();
    }
    let mut received: Vec<u64> = consumers.into_iter().flat_map(|c| c()).collect();
    received.sort_unstable();
    let unique: HashSet<u64> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "a message was received twice");
    sent.sort_unstable();
    assert_eq!(
        received.len(),
        sent.len(),
        "sent {} but received {}",
        sent.len(),
        received.len()
    );
    assert_eq!(received, sent, "what was received is not what was sent");
    println!(
        "channel torture: {} messages delivered exactly once, {handed_back} not sent (full, timed out or closed)",
        sent.len()
    );
    assert!(!sent.is_empty());
    rt.block_on(|| ());
    assert_eq!(rt.stats().coroutines, 0, "coroutines left behind");
}

/// Spawn storms with nested joins, panics, pinned and migrating coroutines,
/// blocking calls and yields; every result is checked.
#[test]
fn scheduler_torture() {
    let _serial = serial();
    let rt = runtime();
    let deadline = Instant::now() + secs();
    let mut rounds = 0u64;
    let mut total = 0u64;
    while Instant::now() < deadline {
        rounds += 1;
        let spawned = rt.block_on(move || {
            fn tree(depth: u32, seed: u64) -> u64 {
                let mut rng = Rng::new(seed);
                match rng.below(8) {
                    0 => corun::yield_now(),
                    1 => corun::blocking(|| std::thread::sleep(Duration::from_micros(200))),
                    2 => corun::sleep(Duration::from_micros(rng.below(500))),
                    _ => {}
                }
                if depth == 0 {
                    return 1;
                }
                let kids: Vec<_> = (0..3)
                    .map(|k| {
                        let b = Builder::new().pinned(rng.below(20) == 0);
                        go!(b, move || tree(depth - 1, seed * 3 + k)).unwrap()
                    })
                    .collect();
                1 + kids.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            }
            let storm: Vec<_> = (0..200u64)
                .map(|i| {
                    go!(move || {
                        if i % 17 == 0 {
                            // resume_unwind: a real unwind, without the
                            // panic hook's message for each of them.
                            std::panic::resume_unwind(Box::new(format!("torture panic {i}")));
                        }
                        tree(3, i)
                    })
                })
                .collect();
            let mut n = 0;
            for (i, h) in storm.into_iter().enumerate() {
                match h.join() {
                    Ok(v) => {
                        assert_eq!(v, 40, "a tree of depth 3 and fan-out 3 has 40 nodes");
                        n += v;
                    }
                    Err(p) => {
                        assert_eq!(i % 17, 0, "only the chosen ones panic");
                        let msg = p.downcast_ref::<String>().unwrap();
                        assert_eq!(msg, &format!("torture panic {i}"));
                    }
                }
            }
            n
        });
        total += spawned;
    }
    assert_eq!(rt.stats().coroutines, 0, "coroutines left behind");
    println!("scheduler torture: {rounds} rounds, {total} coroutines in trees, panics isolated");
}

/// Sleeps, `after`, `tick` and runtime timers with cancellations: nothing
/// wakes early, nothing cancelled fires, everything armed fires.
#[test]
fn timer_torture() {
    let _serial = serial();
    let rt = runtime();
    let deadline = Instant::now() + secs();
    let fired = Arc::new(AtomicU64::new(0));
    let cancelled_fired = Arc::new(AtomicU64::new(0));
    let armed = Arc::new(AtomicU64::new(0));
    let late_cancels = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..300u64)
        .map(|w| {
            let (fired, cancelled_fired, armed) =
                (fired.clone(), cancelled_fired.clone(), armed.clone());
            let late_cancels = late_cancels.clone();
            rt.spawn(move || {
                let mut rng = Rng::new(w + 99);
                while Instant::now() < deadline {
                    let d = Duration::from_micros(rng.below(2000));
                    let start = Instant::now();
                    match rng.below(5) {
                        0 => {
                            corun::sleep(d);
                            assert!(start.elapsed() >= d, "sleep woke early");
                        }
                        1 => {
                            let t = chan::after(d).recv().unwrap();
                            assert!(t >= start + d && Instant::now() >= start + d, "after early");
                        }
                        2 => {
                            let (_keep, never) = chan::bounded::<()>(0);
                            select! {
                                recv(never) -> _ => unreachable!(),
                                default(d) => assert!(start.elapsed() >= d, "select timeout early"),
                            }
                        }
                        3 => {
                            let ticks = chan::tick(d.max(Duration::from_micros(50)));
                            let a = ticks.recv().unwrap();
                            let b = ticks.recv().unwrap();
                            assert!(b > a, "ticks go forward");
                        }
                        _ => {
                            let f = fired.clone();
                            armed.fetch_add(1, Ordering::Relaxed);
                            let keep = Timer::at(start + d, move || {
                                f.fetch_add(1, Ordering::Relaxed);
                            });
                            let cf = cancelled_fired.clone();
                            let doomed = Timer::at(start + d, move || {
                                cf.fetch_add(1, Ordering::Relaxed);
                            });
                            if !doomed.cancel() {
                                // Too late: it fired (or is firing) already.
                                late_cancels.fetch_add(1, Ordering::Relaxed);
                            }
                            drop(keep);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Every armed timer is due within 2 ms of the deadline.
    let settle = Instant::now();
    while fired.load(Ordering::Relaxed) < armed.load(Ordering::Relaxed) {
        assert!(
            settle.elapsed() < Duration::from_secs(10),
            "armed timers did not fire"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Exactly the timers whose cancel came too late fired.
    assert_eq!(
        cancelled_fired.load(Ordering::Relaxed),
        late_cancels.load(Ordering::Relaxed),
        "a cancelled timer fired"
    );
    assert_eq!(fired.load(Ordering::Relaxed), armed.load(Ordering::Relaxed));
    println!(
        "timer torture: {} runtime timers fired; of the cancelled ones only the {} cancelled too late",
        armed.load(Ordering::Relaxed),
        late_cancels.load(Ordering::Relaxed)
    );
}

/// Connect/close storms, resets, slow readers and writers and half-open
/// peers against one echo server: it keeps serving, every client ends,
/// descriptors and memory come back.
#[test]
fn netpoll_torture() {
    let _serial = serial();
    let rt = runtime();
    // Warm-up outside the baseline: a wait creates the poller (its epoll
    // and eventfd) and starts the runtime's threads.
    rt.block_on(|| {
        let (a, _b) = corun::net::UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        assert!((&a).read(&mut [0; 1]).is_err());
    });
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (served, stop) = (served.clone(), stop.clone());
        rt.spawn(move || {
            let mut handlers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    continue;
                };
                served.fetch_add(1, Ordering::Relaxed);
                handlers.push(go!(move || {
                    // Silent peers are dropped after a second: long
                    // enough that a slow conversation on a machine losing
                    // tens of milliseconds to steal is never cut short.
                    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    conn.set_write_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                    let mut buf = [0u8; 1024];
                    loop {
                        match (&conn).read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if (&conn).write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }));
                handlers.retain(|h| !h.is_finished());
            }
            for h in handlers {
                h.join().unwrap();
            }
        })
    };
    let deadline = Instant::now() + secs();
    let clients: Vec<_> = (0..64u64)
        .map(|c| {
            rt.spawn(move || {
                let mut rng = Rng::new(c + 5);
                let mut checked = 0u64;
                while Instant::now() < deadline {
                    let Ok(s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    match rng.below(5) {
                        0 => drop(s), // connect and close
                        1 => {
                            // Reset mid-conversation.
                            (&s).write_all(&[1; 512]).unwrap();
                            reset(&s);
                        }
                        2 => {
                            // Slow reader: a byte at a time.
                            let msg = [2u8; 64];
                            (&s).write_all(&msg).unwrap();
                            let mut got = 0;
                            while got < msg.len() {
                                let mut b = [0u8; 1];
                                assert_eq!((&s).read(&mut b).unwrap(), 1);
                                assert_eq!(b[0], 2);
                                got += 1;
                                if got % 16 == 0 {
                                    corun::sleep(Duration::from_micros(100));
                                }
                            }
                            checked += 1;
                        }
                        3 => {
                            // Slow writer, then half-close and drain.
                            for i in 0..8u8 {
                                (&s).write_all(&[i; 8]).unwrap();
                                corun::sleep(Duration::from_micros(50));
                            }
                            s.shutdown(std::net::Shutdown::Write).unwrap();
                            let mut all = Vec::new();
                            (&s).read_to_end(&mut all).unwrap();
                            assert_eq!(all.len(), 64);
                            checked += 1;
                        }
                        _ => {
                            // Half-open: send half a message and go quiet,
                            // sometimes past the server's read timeout.
                            (&s).write_all(&[3; 10]).unwrap();
                            corun::sleep(Duration::from_millis(rng.below(1200)));
                        }
                    }
                }
                checked
            })
        })
        .collect();
    let checked: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    drop(TcpStream::connect(addr)); // unblock the accept
    server.join().unwrap();
    assert!(checked > 0 && served.load(Ordering::Relaxed) > 0);
    let settle = Instant::now();
    while open_fds() > fds_before && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Fewer is fine: something opened before the baseline (by an earlier
    // suite) may have closed since.
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before,
        "descriptors leaked: {fds_before} -> {fds_after}"
    );
    corun::stacks::trim();
    let rss_after = rss_kib();
    println!(
        "netpoll torture: {} connections served, {checked} conversations checked; RSS {} -> {} KiB",
        served.load(Ordering::Relaxed),
        rss_before,
        rss_after
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS did not come back near its baseline: {rss_before} -> {rss_after} KiB"
    );
}

fn reset(s: &TcpStream) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(s);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid linger struct on an open socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
