//! Stress: producers and consumers across coroutines and OS threads, with
//! plain and select-based operations and random close and drop. About 10^7
//! messages in a release build (a tenth in debug builds): nothing lost,
//! nothing duplicated, per-producer order kept, every waiter released.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{spawn, within};
use corun_sync::chan::*;

const LIMIT: Duration = Duration::from_secs(300);

/// Messages for a test that asks for `n` in release builds.
fn scaled(n: u64) -> u64 {
    if cfg!(debug_assertions) { n / 10 } else { n }
}

fn encode(producer: u64, seq: u64) -> u64 {
    producer << 40 | seq
}

/// Checks the union of what the consumers got: every producer's sequence
/// exactly once, and each consumer saw each producer's messages in order.
fn check(per_consumer: Vec<Vec<u64>>, producers: u64, per_producer: &[u64]) {
    let mut all: Vec<u64> = Vec::new();
    for got in &per_consumer {
        let mut last = vec![None::<u64>; producers as usize];
        for &m in got {
            let (p, s) = ((m >> 40) as usize, m & ((1 << 40) - 1));
            if let Some(prev) = last[p] {
                assert!(s > prev, "producer {p}: {s} after {prev} (FIFO broken)");
            }
            last[p] = Some(s);
        }
        all.extend_from_slice(got);
    }
    let total: u64 = per_producer.iter().sum();
    assert_eq!(all.len() as u64, total, "lost or duplicated messages");
    all.sort_unstable();
    let mut i = 0;
    for (p, &n) in per_producer.iter().enumerate() {
        for s in 0..n {
            assert_eq!(all[i], encode(p as u64, s), "lost or duplicated message");
            i += 1;
        }
    }
}

fn mpmc(cap: Option<usize>, total: u64) {
    let (s, r) = match cap {
        Some(c) => bounded::<u64>(c),
        None => unbounded(),
    };
    let producers = 4u64;
    let per = total / producers;
    let ps: Vec<_> = (0..producers)
        .map(|p| {
            let s = s.clone();
            spawn(p % 2 == 0, move || {
                for i in 0..per {
                    s.send(encode(p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(s);
    let cs: Vec<_> = (0..4)
        .map(|c| {
            let r = r.clone();
            spawn(c % 2 == 1, move || r.iter().collect::<Vec<u64>>())
        })
        .collect();
    drop(r);
    for p in ps {
        p();
    }
    let got: Vec<Vec<u64>> = cs.into_iter().map(|c| c()).collect();
    check(got, producers, &[per; 4]);
}

#[test]
fn mpmc_threads_and_coroutines() {
    within(LIMIT, || {
        corun_runtime::run(|| {
            mpmc(Some(0), scaled(1_000_000));
            mpmc(Some(1), scaled(1_000_000));
            mpmc(Some(64), scaled(1_500_000));
            mpmc(None, scaled(1_500_000));
        })
    });
}

/// Producers select over two send arms each, consumers over every receive
/// arm; disconnected arms are swapped for `never()`.
#[test]
fn select_fan_in_fan_out() {
    within(LIMIT, || {
        corun_runtime::run(|| {
            let total = scaled(2_000_000);
            let chans: Vec<(Sender<u64>, Receiver<u64>)> =
                [0, 8, 0, 8].iter().map(|&c| bounded(c)).collect();
            let producers = 4u64;
            let per = total / producers;
            let ps: Vec<_> = (0..producers)
                .map(|p| {
                    let a = chans[p as usize % 4].0.clone();
                    let b = chans[(p as usize + 1) % 4].0.clone();
                    spawn(p != 3, move || {
                        for i in 0..per {
                            let m = encode(p, i);
                            select! {
                                send(a, m) -> res => res.unwrap(),
                                send(b, m) -> res => res.unwrap(),
                            }
                        }
                    })
                })
                .collect();
            let rs: Vec<Receiver<u64>> = chans.iter().map(|(_, r)| r.clone()).collect();
            drop(chans);
            let cs: Vec<_> = (0..3)
                .map(|c| {
                    let mut rs = rs.clone();
                    spawn(c != 2, move || {
                        let mut got = Vec::new();
                        let mut live = rs.len();
                        while live > 0 {
                            let mut gone = None;
                            select! {
                                recv(rs[0]) -> v => match v { Ok(m) => got.push(m), Err(_) => gone = Some(0) },
                                recv(rs[1]) -> v => match v { Ok(m) => got.push(m), Err(_) => gone = Some(1) },
                                recv(rs[2]) -> v => match v { Ok(m) => got.push(m), Err(_) => gone = Some(2) },
                                recv(rs[3]) -> v => match v { Ok(m) => got.push(m), Err(_) => gone = Some(3) },
                            }
                            if let Some(i) = gone {
                                rs[i] = never();
                                live -= 1;
                            }
                        }
                        got
                    })
                })
                .collect();
            drop(rs);
            for p in ps {
                p();
            }
            let got: Vec<Vec<u64>> = cs.into_iter().map(|c| c()).collect();
            // Two arms per producer: order across channels is not defined,
            // so only check exactly-once delivery.
            let mut all: Vec<u64> = got.into_iter().flatten().collect();
            assert_eq!(all.len() as u64, per * producers);
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len() as u64, per * producers, "duplicates");
        })
    });
}

struct Rng(u64);

impl Rng {
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

/// Rounds with random capacity, a random mix of threads and coroutines,
/// and a random close or drop of the receivers mid-stream.
#[test]
fn random_close_and_drop() {
    within(LIMIT, || {
        corun_runtime::run(|| {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let budget = scaled(3_000_000);
            let mut moved = 0u64;
            let mut round = 0;
            while moved < budget {
                round += 1;
                let cap = [0, 1, 3, 16, usize::MAX][rng.below(5) as usize];
                let (s, r) = if cap == usize::MAX {
                    unbounded::<u64>()
                } else {
                    bounded(cap)
                };
                let producers = 1 + rng.below(4);
                let consumers = 1 + rng.below(4);
                let per = 2_000 + rng.below(20_000);
                let sent = Arc::new(AtomicU64::new(0));
                let ps: Vec<_> = (0..producers)
                    .map(|p| {
                        let s = s.clone();
                        let sent = sent.clone();
                        let coro = rng.below(2) == 0;
                        let timed = rng.below(3) == 0;
                        spawn(coro, move || {
                            for i in 0..per {
                                let r = if timed {
                                    match s.send_timeout(encode(p, i), Duration::from_secs(60)) {
                                        Err(SendTimeoutError::Timeout(_)) => panic!("send stuck"),
                                        r => r.map_err(|e| e.into_inner()),
                                    }
                                } else {
                                    s.send(encode(p, i)).map_err(|e| e.into_inner())
                                };
                                match r {
                                    Ok(()) => sent.fetch_add(1, Ordering::Relaxed),
                                    Err(m) => {
                                        assert_eq!(
                                            m,
                                            encode(p, i),
                                            "the unsent message comes back"
                                        );
                                        break;
                                    }
                                };
                            }
                        })
                    })
                    .collect();
                let cs: Vec<_> = (0..consumers)
                    .map(|_| {
                        let r = r.clone();
                        let coro = rng.below(2) == 0;
                        spawn(coro, move || r.iter().collect::<Vec<u64>>())
                    })
                    .collect();
                // 0: close mid-stream; 1: let it finish, then a sub-round where the
                // receivers are dropped under blocked senders; 2: let it finish.
                let ending = rng.below(3);
                let stop_after = rng.below(per * producers);
                let closer = s.clone();
                drop(s);
                match ending {
                    0 => {
                        let all = per * producers;
                        while sent.load(Ordering::Relaxed) < stop_after.min(all - 1) {
                            corun_runtime::yield_now();
                            std::thread::yield_now();
                        }
                        closer.close();
                    }
                    _ => drop(closer),
                }
                drop(r);
                for p in ps {
                    p();
                }
                let got: Vec<Vec<u64>> = cs.into_iter().map(|c| c()).collect();
                let sent = sent.load(Ordering::Relaxed);
                let received: u64 = got.iter().map(|g| g.len() as u64).sum();
                // Receivers outlive the senders here (they are joined after
                // the producers), so everything sent is received.
                assert_eq!(
                    received, sent,
                    "round {round}: sent {sent}, received {received}"
                );
                let mut all: Vec<u64> = got.into_iter().flatten().collect();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len() as u64, received, "round {round}: duplicates");
                moved += sent;

                // Receivers dropped while producers block: they fail and
                // keep their message; nothing else is delivered.
                if ending == 1 {
                    let (s, r) = bounded::<u64>(cap.min(4));
                    let blocked: Vec<_> = (0..3)
                        .map(|p| {
                            let s = s.clone();
                            spawn(p % 2 == 0, move || {
                                let mut ok = 0u64;
                                while s.send(p).is_ok() {
                                    ok += 1;
                                }
                                ok
                            })
                        })
                        .collect();
                    let take = rng.below(50);
                    for _ in 0..take {
                        r.recv().unwrap();
                    }
                    drop(r);
                    let ok: u64 = blocked.into_iter().map(|b| b()).sum();
                    assert!(ok >= take && ok <= take + cap.min(4) as u64);
                }
            }
        })
    });
}

/// A select with `default` (or a timeout already passed) answers "nothing
/// ready" only if that was true at one instant. Each round, a message sits in `r1` while the other side
/// fills `r2` and then empties `r1`: at every moment one of them is ready,
/// so the select must never take its default (crossbeam's
/// `linearizable_default` and `linearizable_timeout`, run in coroutines
/// and on threads alike).
#[test]
fn select_default_is_linearizable() {
    let rounds = scaled(200_000);
    let run = move |coro: bool| {
        let (start_s, start_r) = bounded::<()>(0);
        let (end_s, end_r) = bounded::<()>(0);
        let (s1, r1) = bounded::<u32>(1);
        let (s2, r2) = bounded::<u32>(1);
        let (r1b, s2b) = (r1.clone(), s2.clone());
        let other = spawn(coro, move || {
            for _ in 0..rounds {
                start_r.recv().unwrap();
                s2b.send(1).unwrap();
                let _ = r1b.try_recv();
                end_r.recv().unwrap();
            }
        });
        let mut defaults = 0u64;
        for round in 0..rounds {
            start_s.send(()).unwrap();
            s1.send(1).unwrap();
            if round % 2 == 0 {
                select! {
                    recv(r1) -> _ => {}
                    recv(r2) -> _ => {}
                    default => defaults += 1,
                }
            } else {
                // A timeout that has passed by the time nothing is found.
                select! {
                    recv(r1) -> _ => {}
                    recv(r2) -> _ => {}
                    default(Duration::ZERO) => defaults += 1,
                }
            }
            end_s.send(()).unwrap();
            let _ = r2.try_recv();
        }
        other();
        assert_eq!(defaults, 0, "default taken while a message was ready");
    };
    within(Duration::from_secs(120), move || {
        run(false);
        corun_runtime::run(move || run(true));
    });
}

/// Every way to place two sides: (first in a coroutine, second in a
/// coroutine).
const PLACEMENTS: [(bool, bool); 4] = [(true, false), (false, true), (true, true), (false, false)];

/// What a side runs in, for failure messages.
fn runs_in(coro: bool) -> &'static str {
    if coro { "coroutine" } else { "thread" }
}

fn gave_up(waiter_coro: bool, other_coro: bool, round: u64, how: &str) -> ! {
    panic!(
        "round {round} ({how}; waiter in a {}, other side in a {}): the deadline \
         passed although the other side was ready within 400 us",
        runs_in(waiter_coro),
        runs_in(other_coro),
    )
}

/// crossbeam's `unblocks`, many times over and without its half-second
/// sleeps: each round the waiting side blocks in a select (or a plain
/// operation) with a 20 s deadline, on an otherwise idle runtime, so the
/// poller sleeps until that deadline; the other side, after a random pause
/// of up to 400 us, completes the operation from a thread or a coroutine.
/// The waiter must be released by that hand-off: reaching its deadline
/// means the wake-up was lost (a late one could not take 20 s). Both
/// sides in all four placements, receive and send arms, and a losing arm
/// that must be unregistered every round.
#[test]
fn deadline_waits_are_woken_by_the_hand_off() {
    const DEADLINE: Duration = Duration::from_secs(20);
    let rounds = scaled(2_000);
    let run = move |waiter_coro: bool, other_coro: bool| {
        let (s_lose, r_lose) = bounded::<u64>(0);
        let (s, r) = bounded::<u64>(0);
        let (s_other, r_other) = (s.clone(), r.clone());
        let other = spawn(other_coro, move || {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(other_coro));
            for round in 0..rounds {
                let pause = Duration::from_micros(rng.below(400));
                if other_coro {
                    corun_runtime::sleep(pause);
                } else {
                    std::thread::sleep(pause);
                }
                if round % 2 == 0 {
                    s_other.send(round).unwrap();
                } else {
                    assert_eq!(r_other.recv().unwrap(), round);
                }
            }
        });
        let waiter = spawn(waiter_coro, move || {
            for round in 0..rounds {
                match round % 4 {
                    0 => select! {
                        recv(r_lose) -> _ => unreachable!("nobody sends on it"),
                        recv(r) -> v => assert_eq!(v, Ok(round)),
                        default(DEADLINE) => gave_up(waiter_coro, other_coro, round, "select receive"),
                    },
                    1 => select! {
                        send(s_lose, round) -> _ => unreachable!("nobody receives on it"),
                        send(s, round) -> res => res.unwrap(),
                        default(DEADLINE) => gave_up(waiter_coro, other_coro, round, "select send"),
                    },
                    2 => match r.recv_timeout(DEADLINE) {
                        Ok(v) => assert_eq!(v, round),
                        Err(_) => gave_up(waiter_coro, other_coro, round, "recv_timeout"),
                    },
                    _ => {
                        if s.send_timeout(round, DEADLINE).is_err() {
                            gave_up(waiter_coro, other_coro, round, "send_timeout")
                        }
                    }
                }
            }
            drop((r_lose, s_lose));
        });
        waiter();
        other();
    };
    within(LIMIT, move || {
        for (waiter_coro, other_coro) in PLACEMENTS {
            run(waiter_coro, other_coro);
        }
    });
}

/// Timeouts racing hand-offs: both sides give up after a few
/// microseconds, so deadlines expire while a partner is claiming them.
/// An operation that timed out must not have happened, one that succeeded
/// must have happened exactly once: what the receiver got is exactly, in
/// order, what the sender was told it sent. Rendezvous and buffered, plain
/// timed operations and selects with a timed `default`, all four
/// placements.
#[test]
fn timed_out_operations_never_happen_and_completed_ones_happen_once() {
    let per_run = scaled(20_000);
    let run = move |cap: usize, sender_coro: bool, receiver_coro: bool| {
        let (s, r) = bounded::<u64>(cap);
        let sender = spawn(sender_coro, move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ cap as u64);
            let mut sent = Vec::new();
            for seq in 0..per_run {
                let wait = Duration::from_micros(rng.below(30));
                let ok = if seq % 2 == 0 {
                    s.send_timeout(seq, wait).is_ok()
                } else {
                    select! {
                        send(s, seq) -> res => res.is_ok(),
                        default(wait) => false,
                    }
                };
                if ok {
                    sent.push(seq);
                }
            }
            sent
        });
        let receiver = spawn(receiver_coro, move || {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ cap as u64);
            let mut got = Vec::new();
            loop {
                // Now and then arrive late, so the sender's deadlines
                // expire too.
                if rng.below(4) == 0 {
                    for _ in 0..rng.below(2_000) {
                        std::hint::spin_loop();
                    }
                }
                let wait = Duration::from_micros(rng.below(30));
                let res = if rng.below(2) == 0 {
                    r.recv_timeout(wait)
                } else {
                    select! {
                        recv(r) -> v => v.map_err(|_| RecvTimeoutError::Disconnected),
                        default(wait) => Err(RecvTimeoutError::Timeout),
                    }
                };
                match res {
                    Ok(v) => got.push(v),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return got,
                }
            }
        });
        let sent = sender();
        let got = receiver();
        assert!(
            !sent.is_empty(),
            "cap {cap}: no send completed in {per_run} tries"
        );
        if got != sent {
            let at = got.iter().zip(&sent).take_while(|(g, s)| g == s).count();
            panic!(
                "cap {cap}, sender in a {}, receiver in a {}: {} received, {} sent; \
                 first difference at #{at}: received {:?}, sent {:?}",
                runs_in(sender_coro),
                runs_in(receiver_coro),
                got.len(),
                sent.len(),
                got.get(at),
                sent.get(at),
            );
        }
    };
    within(LIMIT, move || {
        for cap in [0, 1] {
            for (sender_coro, receiver_coro) in PLACEMENTS {
                run(cap, sender_coro, receiver_coro);
            }
        }
    });
}
