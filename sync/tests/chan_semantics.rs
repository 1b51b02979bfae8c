//! Go's channel semantics and crossbeam-channel's API contract, each test
//! run on a plain OS thread and inside a coroutine.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{both, eventually, not_early, sleep_ms, spawn};
use corun_runtime::WaitReason;
use corun_sync::chan::*;

const MS: Duration = Duration::from_millis(1);

fn fifo(cap: Option<usize>) {
    let (s, r) = match cap {
        Some(c) => bounded::<u32>(c),
        None => unbounded(),
    };
    let coro = corun_runtime::is_coroutine();
    let p = spawn(coro, move || {
        for i in 0..2000 {
            s.send(i).unwrap();
        }
    });
    for i in 0..2000 {
        assert_eq!(r.recv(), Ok(i));
    }
    p();
    assert_eq!(r.recv(), Err(RecvError));
}

#[test]
fn fifo_per_channel() {
    both(|| {
        fifo(Some(0));
        fifo(Some(1));
        fifo(Some(7));
        fifo(None);
    });
}

#[test]
fn unbuffered_is_a_rendezvous() {
    both(|| {
        let (s, r) = bounded::<u32>(0);
        // Nobody receives: a non-blocking send fails and keeps the value.
        assert_eq!(s.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            (r.len(), r.capacity(), r.is_empty(), r.is_full()),
            (0, Some(0), true, true)
        );
        let receiving = Arc::new(AtomicBool::new(false));
        let rc = receiving.clone();
        let coro = corun_runtime::is_coroutine();
        let h = spawn(coro, move || {
            sleep_ms(10);
            rc.store(true, Ordering::SeqCst);
            r.recv().unwrap()
        });
        s.send(42).unwrap();
        // The send completed only once the receiver was there.
        assert!(receiving.load(Ordering::SeqCst));
        assert_eq!(h(), 42);
    });
}

#[test]
fn try_send_hands_off_to_a_waiting_receiver() {
    both(|| {
        let (s, r) = bounded::<u32>(0);
        let coro = corun_runtime::is_coroutine();
        let h = spawn(coro, move || r.recv());
        let mut v = 5;
        loop {
            match s.try_send(v) {
                Ok(()) => break,
                Err(TrySendError::Full(x)) => {
                    v = x;
                    corun_runtime::yield_now();
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(h(), Ok(5));
    });
}

#[test]
fn close_drains_then_disconnects() {
    both(|| {
        for cap in [Some(0), Some(3), None] {
            let (s, r) = match cap {
                Some(c) => bounded::<u32>(c),
                None => unbounded(),
            };
            if cap != Some(0) {
                for i in 0..3 {
                    s.send(i).unwrap();
                }
            }
            assert!(!s.is_closed() && !r.is_closed());
            assert!(s.close());
            assert!(!s.close(), "closing twice reports false");
            assert!(s.is_closed() && r.is_closed());
            // Send after close returns the value.
            assert_eq!(s.send(9), Err(SendError(9)));
            assert_eq!(s.try_send(9), Err(TrySendError::Disconnected(9)));
            assert_eq!(
                s.send_timeout(9, MS),
                Err(SendTimeoutError::Disconnected(9))
            );
            if cap != Some(0) {
                assert_eq!(r.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
            }
            assert_eq!(r.recv(), Err(RecvError));
            assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(r.recv_timeout(MS), Err(RecvTimeoutError::Disconnected));
        }
    });
}

#[test]
fn close_wakes_blocked_receivers_and_senders() {
    both(|| {
        let coro = corun_runtime::is_coroutine();
        let (s, r) = bounded::<u32>(0);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                spawn(coro, move || r.recv())
            })
            .collect();
        sleep_ms(10);
        s.close();
        for h in receivers {
            assert_eq!(h(), Err(RecvError));
        }
        let (s, _r) = bounded::<u32>(1);
        s.send(0).unwrap();
        let senders: Vec<_> = (1..4)
            .map(|i| {
                let s = s.clone();
                spawn(coro, move || s.send(i))
            })
            .collect();
        sleep_ms(10);
        s.close();
        let mut back: Vec<u32> = senders
            .into_iter()
            .map(|h| h().unwrap_err().into_inner())
            .collect();
        back.sort();
        assert_eq!(back, [1, 2, 3]);
    });
}

#[test]
fn dropping_ends_disconnects() {
    both(|| {
        let (s, r) = bounded::<u32>(2);
        let s2 = s.clone();
        s.send(1).unwrap();
        drop(s);
        s2.send(2).unwrap();
        drop(s2);
        assert_eq!(r.iter().collect::<Vec<_>>(), [1, 2]);
        assert!(r.is_closed());

        // Receivers gone: sends fail, buffered messages are dropped.
        let drops = Arc::new(AtomicUsize::new(0));
        struct D(Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (s, r) = unbounded::<D>();
        s.send(D(drops.clone())).unwrap();
        s.send(D(drops.clone())).unwrap();
        let r2 = r.clone();
        drop(r);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(r2);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert!(s.is_closed());
        let e = s.send(D(drops.clone())).unwrap_err();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        drop(e);
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn blocked_sender_fails_when_receivers_go() {
    both(|| {
        let coro = corun_runtime::is_coroutine();
        let (s, r) = bounded::<u32>(0);
        let h = spawn(coro, move || s.send(7));
        sleep_ms(10);
        drop(r);
        assert_eq!(h(), Err(SendError(7)));
    });
}

#[test]
fn never_delivers() {
    both(|| {
        let r = never::<u32>();
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        let start = Instant::now();
        assert_eq!(r.recv_timeout(5 * MS), Err(RecvTimeoutError::Timeout));
        not_early(start, 5 * MS);
        assert_eq!(
            (r.len(), r.capacity(), r.is_empty(), r.is_full()),
            (0, Some(0), true, true)
        );
        assert!(r.same_channel(&never()));
        select! {
            recv(r) -> _ => panic!("never() delivered"),
            default => {}
        }
    });
}

#[test]
fn timeouts_do_not_fire_early() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        let start = Instant::now();
        assert_eq!(r.recv_timeout(10 * MS), Err(RecvTimeoutError::Timeout));
        not_early(start, 10 * MS);
        let start = Instant::now();
        assert_eq!(
            r.recv_deadline(start + 10 * MS),
            Err(RecvTimeoutError::Timeout)
        );
        not_early(start, 10 * MS);
        s.send(1).unwrap();
        let start = Instant::now();
        assert_eq!(
            s.send_timeout(2, 10 * MS),
            Err(SendTimeoutError::Timeout(2))
        );
        not_early(start, 10 * MS);
        let start = Instant::now();
        assert_eq!(
            s.send_deadline(3, start + 10 * MS),
            Err(SendTimeoutError::Timeout(3))
        );
        not_early(start, 10 * MS);
        // A deadline in the past still takes what is ready.
        assert_eq!(r.recv_deadline(start), Ok(1));
        // Timed-out waiters leave nothing behind: a later rendezvous works.
        let (s, r) = bounded::<u32>(0);
        assert!(s.send_timeout(1, MS).is_err());
        assert!(r.recv_timeout(MS).is_err());
        let coro = corun_runtime::is_coroutine();
        let h = spawn(coro, move || r.recv());
        s.send(2).unwrap();
        assert_eq!(h(), Ok(2));
    });
}

#[test]
fn after_at_and_tick() {
    both(|| {
        let start = Instant::now();
        let r = after(10 * MS);
        assert_eq!(r.capacity(), Some(1));
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        let t = r.recv().unwrap();
        assert!(t >= start + 10 * MS);
        not_early(start, 10 * MS);
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(r.recv_timeout(MS), Err(RecvTimeoutError::Timeout));

        let past = at(start);
        assert_eq!(past.len(), 1);
        assert_eq!(past.try_recv(), Ok(start));
        assert_eq!(past.len(), 0);

        let period = 5 * MS;
        let ticks = tick(period);
        let start = Instant::now();
        let a = ticks.recv().unwrap();
        let b = ticks.recv().unwrap();
        assert!(b >= a + period);
        not_early(start, period * 2);
        // Missed ticks are dropped, not queued.
        sleep_ms(30);
        assert_eq!(ticks.len(), 1);
        assert!(ticks.try_recv().is_ok());
        assert_eq!(ticks.try_recv(), Err(TryRecvError::Empty));

        // In select!, a timer arm fires at its deadline.
        let (_s, idle) = unbounded::<u32>();
        let start = Instant::now();
        select! {
            recv(idle) -> _ => panic!("nothing sent"),
            recv(after(10 * MS)) -> t => assert!(t.unwrap() >= start + 10 * MS),
        }
        not_early(start, 10 * MS);
    });
}

#[test]
fn select_default_and_timeout() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        let hit;
        select! {
            recv(r) -> _ => panic!("empty"),
            default => hit = true,
        }
        assert!(hit);
        s.send(1).unwrap();
        select! {
            recv(r) -> v => assert_eq!(v, Ok(1)),
            default => panic!("a message was ready"),
        }
        let start = Instant::now();
        select! {
            recv(r) -> _ => panic!("empty"),
            send(s, 2) -> res => res.unwrap(),
            default(10 * MS) => panic!("send was ready"),
        }
        select! {
            send(s, 3) -> _ => panic!("full"),
            default(10 * MS) => not_early(start, 10 * MS),
        }
        // Only a default: runs it.
        select! { default => {} }
        let start = Instant::now();
        select! { default(5 * MS) => not_early(start, 5 * MS) }
        // A disconnected arm is ready with an error.
        drop(s);
        assert_eq!(r.recv(), Ok(2));
        select! {
            recv(r) -> v => assert_eq!(v, Err(RecvError)),
            default(Duration::from_secs(10)) => panic!("disconnected arm is ready"),
        }
    });
}

#[test]
fn select_default_sees_peers_parked_on_a_channel_selects_block_on() {
    // A select that blocks on a channel turns on its lock-free readiness
    // hint; later selects skip it (without locking) while the hint says
    // "not ready". A parked peer must make it say "ready".
    both(|| {
        let coro = corun_runtime::is_coroutine();
        let (s, r) = bounded::<u32>(0);
        let s1 = s.clone();
        let h = spawn(coro, move || {
            sleep_ms(5);
            s1.send(1).unwrap();
        });
        select! { recv(r) -> v => assert_eq!(v, Ok(1)) }
        h();
        let r1 = r.clone();
        let h = spawn(coro, move || {
            sleep_ms(5);
            assert_eq!(r1.recv(), Ok(2));
        });
        select! { send(s, 2) -> res => res.unwrap() }
        h();

        // Now peers park first; selects with `default` poll.
        let s1 = s.clone();
        let h = spawn(coro, move || s1.send(3).unwrap());
        eventually(|| {
            select! {
                recv(r) -> v => { assert_eq!(v, Ok(3)); true },
                default => false,
            }
        });
        h();
        let r1 = r.clone();
        let h = spawn(coro, move || assert_eq!(r1.recv(), Ok(4)));
        eventually(|| {
            select! {
                send(s, 4) -> res => { res.unwrap(); true },
                default => false,
            }
        });
        h();
        // Closing is readiness too.
        drop(s);
        select! {
            recv(r) -> v => assert_eq!(v, Err(RecvError)),
            default => panic!("a closed channel is ready"),
        }
    });
}

#[test]
fn select_fairness_chi_square() {
    both(|| {
        // Four always-ready channels: over many rounds each arm must win
        // about a quarter of the time (Go picks uniformly at random).
        let chans: Vec<_> = (0..4).map(|_| unbounded::<()>()).collect();
        let rounds = 40_000;
        for (s, _) in &chans {
            for _ in 0..rounds {
                s.send(()).unwrap();
            }
        }
        let mut counts = [0u32; 4];
        let rs: Vec<_> = chans.iter().map(|(_, r)| r.clone()).collect();
        for _ in 0..rounds {
            select! {
                recv(rs[0]) -> _ => counts[0] += 1,
                recv(rs[1]) -> _ => counts[1] += 1,
                recv(rs[2]) -> _ => counts[2] += 1,
                recv(rs[3]) -> _ => counts[3] += 1,
            }
        }
        let expected = rounds as f64 / 4.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 3 degrees of freedom, p = 1e-6: CI runs this twice a run, and a
        // fair select must not fail it in practice. A bias of 26% against
        // 24% over these rounds already reaches 32.
        assert!(chi2 < 30.66, "unfair select: {counts:?}, chi2 = {chi2}");

        // With only two of four arms ready, each gets half (a rotation
        // instead of a shuffle would favour one of them 3:1).
        let (s1, r1) = unbounded::<()>();
        let (_s2, r2) = unbounded::<()>();
        let (s3, r3) = unbounded::<()>();
        let (_s4, r4) = unbounded::<()>();
        let mut c = [0u32; 2];
        for _ in 0..20_000 {
            s1.send(()).unwrap();
            s3.send(()).unwrap();
            select! {
                recv(r1) -> _ => { c[0] += 1; r3.recv().unwrap(); }
                recv(r2) -> _ => panic!("empty"),
                recv(r3) -> _ => { c[1] += 1; r1.recv().unwrap(); }
                recv(r4) -> _ => panic!("empty"),
            }
        }
        let e = 10_000.0;
        let chi2 = (c[0] as f64 - e).powi(2) / e + (c[1] as f64 - e).powi(2) / e;
        // 1 degree of freedom, p = 1e-6; the 3:1 of a rotation gives 5000.
        assert!(chi2 < 23.93, "unfair select over ready subset: {c:?}");
    });
}

#[test]
fn select_biased_prefers_first() {
    both(|| {
        let (s1, r1) = unbounded::<u32>();
        let (s2, r2) = unbounded::<u32>();
        for i in 0..100 {
            s1.send(i).unwrap();
            s2.send(i).unwrap();
        }
        for _ in 0..100 {
            select_biased! {
                recv(r1) -> _ => {}
                recv(r2) -> _ => panic!("r1 was ready"),
            }
        }
        let mut sel = Select::new_biased();
        let _ = sel.recv(&r1);
        let i2 = sel.recv(&r2);
        let op = sel.select();
        assert_eq!(op.index(), i2);
        assert_eq!(op.recv(&r2), Ok(0));
    });
}

#[test]
fn blocked_select_meets_every_kind_of_peer() {
    both(|| {
        let coro = corun_runtime::is_coroutine();
        for cap in [0usize, 1] {
            // Blocked select recv arm <- plain sender.
            let (s, r) = bounded::<u32>(cap);
            let (_s2, r2) = bounded::<u32>(cap);
            let h = spawn(coro, move || {
                select! {
                    recv(r) -> v => v.unwrap(),
                    recv(r2) -> _ => panic!("nothing sent on r2"),
                }
            });
            sleep_ms(5);
            s.send(11).unwrap();
            assert_eq!(h(), 11);

            // Blocked select send arm -> plain receiver.
            let (s, r) = bounded::<u32>(cap);
            if cap == 1 {
                s.send(0).unwrap();
            }
            let (_s2, r2) = bounded::<u32>(cap);
            let h = spawn(coro, move || {
                select! {
                    send(s, 12) -> res => res.unwrap(),
                    recv(r2) -> _ => panic!("nothing sent on r2"),
                }
            });
            sleep_ms(5);
            if cap == 1 {
                assert_eq!(r.recv(), Ok(0));
            }
            assert_eq!(r.recv(), Ok(12));
            h();

            // Blocked select send arm -> selecting receiver, both ways
            // round; the other arms are on channels nobody serves.
            let (s, r) = bounded::<u32>(cap);
            let (_idle_s, idle_r) = bounded::<u32>(0);
            let (idle_s2, _idle_r2) = bounded::<u32>(0);
            let h = spawn(coro, move || {
                for i in 0..200 {
                    select! {
                        send(s, i) -> res => res.unwrap(),
                        recv(idle_r) -> _ => panic!("nothing sent on idle_r"),
                    }
                }
            });
            for i in 0..200 {
                select! {
                    recv(r) -> v => assert_eq!(v, Ok(i)),
                    send(idle_s2, 0) -> _ => panic!("nobody receives on idle_s2"),
                    default(Duration::from_secs(10)) => panic!("stuck"),
                }
            }
            h();
        }
    });
}

#[test]
fn select_does_not_match_itself() {
    both(|| {
        // A select with a send and a receive on the same unbuffered channel
        // must not rendezvous with itself (Go blocks forever here).
        let (s, r) = bounded::<u32>(0);
        let start = Instant::now();
        select! {
            send(s, 1) -> _ => panic!("matched itself"),
            recv(r) -> _ => panic!("matched itself"),
            default(10 * MS) => not_early(start, 10 * MS),
        }
    });
}

#[test]
fn select_api() {
    both(|| {
        let (s1, r1) = unbounded::<u32>();
        let (s2, r2) = bounded::<u32>(0);
        let mut sel = Select::new();
        let i1 = sel.recv(&r1);
        let i2 = sel.recv(&r2);
        assert_eq!(sel.try_select().unwrap_err(), TrySelectError);
        assert_eq!(sel.try_ready(), Err(TryReadyError));
        assert_eq!(sel.select_timeout(MS).unwrap_err(), SelectTimeoutError);
        assert_eq!(sel.ready_timeout(MS), Err(ReadyTimeoutError));
        s1.send(5).unwrap();
        assert_eq!(sel.ready(), i1);
        assert_eq!(sel.try_ready(), Ok(i1));
        let op = sel.select_deadline(Instant::now() + MS).unwrap();
        assert_eq!(op.index(), i1);
        assert_eq!(op.recv(&r1), Ok(5));

        // ready() wakes when a peer arrives.
        let coro = corun_runtime::is_coroutine();
        let h = spawn(coro, move || s2.send(6));
        assert_eq!(sel.ready(), i2);
        assert_eq!(r2.recv(), Ok(6));
        h().unwrap();

        sel.remove(i1);
        assert_eq!(
            sel.ready_deadline(Instant::now() + MS),
            Ok(i2),
            "r2 is disconnected"
        );
        let op = sel.select();
        assert_eq!(op.recv(&r2), Err(RecvError));

        // Empty selections.
        let mut empty = Select::new();
        assert!(empty.try_select().is_err());
        let start = Instant::now();
        assert!(empty.select_timeout(5 * MS).is_err());
        not_early(start, 5 * MS);
        assert!(format!("{empty:?}").contains("Select"));
    });
}

#[test]
fn a_selection_moves_and_is_shared_between_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    both(|| {
        let (s1, r1) = bounded::<u32>(1);
        let (_s2, r2) = unbounded::<u32>();
        let mut sel = Select::new();
        let i1 = sel.recv(&r1);
        sel.recv(&r2);
        send_and_sync(&sel);
        s1.send(9).unwrap();
        // Built here, cloned and run on other threads, completed there.
        let shared = &sel;
        let ready = std::thread::scope(|scope| scope.spawn(|| shared.clone().ready()).join());
        assert_eq!(ready.unwrap(), i1);
        let r1 = &r1;
        let got = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let op = sel.select();
                    assert_eq!(op.index(), i1);
                    op.recv(r1)
                })
                .join()
        });
        assert_eq!(got.unwrap(), Ok(9));
    });
}

#[test]
fn a_panicking_message_destructor_reaches_the_dropper() {
    // Every message's destructor panics; the first panic must reach the
    // code that dropped the last receiver (later messages are leaked, as
    // with crossbeam) instead of a second panic aborting the process.
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
            panic!("bomb");
        }
    }
    both(|| {
        for cap in [Some(4), None] {
            DROPPED.store(0, Ordering::SeqCst);
            let (s, r) = match cap {
                Some(c) => bounded::<Bomb>(c),
                None => unbounded(),
            };
            for _ in 0..3 {
                s.send(Bomb).unwrap();
            }
            drop(s);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(r)));
            let payload = res.expect_err("the destructor's panic comes out of drop");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"bomb"));
            assert_eq!(DROPPED.load(Ordering::SeqCst), 1, "the rest are leaked");
        }
    });
}

#[test]
fn abandoned_selected_operation_keeps_the_message() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        s.send(1).unwrap();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.recv(&r);
            let _op = sel.select();
        }));
        assert!(res.is_err(), "dropping a SelectedOperation panics");
        assert_eq!(r.try_recv(), Ok(1), "the reserved message is still there");

        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.send(2).unwrap();
            let r2 = r.clone();
            let mut sel = Select::new();
            sel.recv(&r);
            let op = sel.select();
            let _ = op.recv(&r2);
        }));
        assert!(wrong.is_err(), "passing another receiver panics");
        assert_eq!(r.try_recv(), Ok(2));
    });
}

/// A selected send holds a slot. crossbeam completes it with `Ok` even if
/// the receivers left in between (the message is then dropped with the
/// rest); only a Go `close` in between refuses it, with the message back.
#[test]
fn a_reserved_send_outlives_the_receivers_but_not_a_close() {
    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    both(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, r) = bounded::<Probe>(1);
        let mut sel = Select::new();
        sel.send(&s);
        let op = sel.select();
        drop(r);
        assert!(op.send(&s, Probe(drops.clone())).is_ok(), "as crossbeam");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped, not kept");
        assert!(s.send(Probe(drops.clone())).is_err(), "later sends fail");

        let (s, r) = bounded::<u32>(1);
        let mut sel = Select::new();
        sel.send(&s);
        let op = sel.select();
        s.close();
        assert_eq!(op.send(&s, 7).unwrap_err().into_inner(), 7);
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn exchange_with_abandoning_selector() {
    both(|| {
        // A select blocked on an unbuffered send is claimed by a receiver,
        // then abandons the operation: the receiver must not lose anything
        // and must still get the next message.
        let coro = corun_runtime::is_coroutine();
        let (s, r) = bounded::<u32>(0);
        let s2 = s.clone();
        let h = spawn(coro, move || r.recv());
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.send(&s);
            let _op = sel.select();
        }));
        assert!(res.is_err());
        s2.send(3).unwrap();
        assert_eq!(h(), Ok(3));
    });
}

/// A `select!` receive arm that a sender filled directly, abandoned before
/// completion: the cancellation drops the message, once. `select!` always
/// completes what it selects, so this drives the macro's hidden entry
/// points by hand.
#[test]
fn an_abandoned_filled_select_arm_drops_its_message_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    both(|| {
        DROPS.store(0, Ordering::SeqCst);
        let (s, r) = bounded::<Counted>(0);
        let r2 = r.clone();
        // The selector is a coroutine so that its wait can be observed: the
        // send must find it blocked to fill its arm.
        let selector = corun_runtime::spawn(move || {
            let arm = __private::RecvArm::new(&r2);
            let mut ops = [__private::Op::recv_arm(&arm, 0)];
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _abandoned = __private::select(&mut ops, false);
            }))
            .expect_err("dropping a SelectedOperation panics")
        });
        let id = selector.id();
        eventually(|| {
            corun_runtime::coroutines()
                .iter()
                .any(|c| c.id == id && c.wait_reason == WaitReason::Select)
        });
        s.send(Counted).map_err(|_| "sent").unwrap();
        let payload = selector.join().unwrap();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"dropped `SelectedOperation` without completing the operation")
        );
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "dropped once, by the cancel"
        );
        assert_eq!(r.try_recv().map(|_| ()), Err(TryRecvError::Empty));
    });
}

#[test]
fn iterators() {
    both(|| {
        let (s, r) = unbounded::<u32>();
        for i in 0..5 {
            s.send(i).unwrap();
        }
        assert_eq!(r.try_iter().take(2).collect::<Vec<_>>(), [0, 1]);
        drop(s);
        assert_eq!((&r).into_iter().collect::<Vec<_>>(), [2, 3, 4]);
        let (s, r) = bounded::<u32>(3);
        s.send(8).unwrap();
        drop(s);
        let mut n = 0;
        for v in r {
            assert_eq!(v, 8);
            n += 1;
        }
        assert_eq!(n, 1);
    });
}

#[test]
fn introspection_methods() {
    both(|| {
        let (s, r) = bounded::<u32>(2);
        assert_eq!(
            (s.len(), s.capacity(), s.is_empty(), s.is_full()),
            (0, Some(2), true, false)
        );
        s.send(1).unwrap();
        s.send(2).unwrap();
        assert_eq!((r.len(), r.is_empty(), r.is_full()), (2, false, true));
        let (u, ur) = unbounded::<u32>();
        assert_eq!(
            (u.capacity(), u.is_full(), ur.capacity()),
            (None, false, None)
        );
        assert!(s.same_channel(&s.clone()));
        assert!(!s.same_channel(&bounded(2).0));
        assert!(r.same_channel(&r.clone()));
        assert!(!r.same_channel(&never()));
        let a = after(MS);
        assert!(a.same_channel(&a.clone()) && !a.same_channel(&after(MS)));
        assert_eq!(
            format!("{s:?} {r:?} {:?}", r.iter()),
            "Sender { .. } Receiver { .. } Iter { .. }"
        );
    });
}

/// `len` and `is_full` while `Select` operations hold reservations: a
/// selected send's slot counts and fills the channel (as `try_send` sees
/// it), a selected receive's message no longer counts, and a message handed
/// to a blocked select arm through the buffer never pushes `len` past the
/// capacity.
#[test]
fn introspection_under_select_reservations() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        let mut sel = Select::new();
        sel.send(&s);
        let held = sel.select();
        assert_eq!((s.len(), s.is_full()), (1, true));
        assert!(matches!(s.try_send(9), Err(TrySendError::Full(9))));
        held.send(&s, 1).unwrap();
        assert_eq!((s.len(), s.is_full()), (1, true));

        let mut sel = Select::new();
        sel.recv(&r);
        let held = sel.select();
        assert_eq!(r.len(), 0, "the message is promised to the selection");
        // Another selection blocks: the only message is promised.
        let r2 = r.clone();
        let other = spawn(corun_runtime::is_coroutine(), move || {
            let mut sel = Select::new();
            sel.recv(&r2);
            let op = sel.select();
            op.recv(&r2).unwrap()
        });
        // A send succeeds only by handing 2 to the blocked selection.
        eventually(|| s.try_send(2).is_ok());
        assert!(r.len() <= 1, "len {} over capacity 1", r.len());
        assert_eq!(held.recv(&r), Ok(1));
        assert_eq!(other(), 2);
        assert_eq!((r.len(), r.is_empty(), r.is_full()), (0, true, false));
    });
}

/// A message the channel reserved for a blocked `Select` it woke still
/// counts until that select takes it, as with crossbeam (whose woken
/// selects take their message themselves): `len` and `is_empty` agree with
/// a send that cannot proceed.
#[test]
fn a_woken_selections_message_counts_until_taken() {
    both(|| {
        let (s, r) = bounded::<u32>(1);
        let taken = Arc::new(AtomicBool::new(false));
        let (r2, taken2) = (r.clone(), taken.clone());
        let selector = spawn(corun_runtime::is_coroutine(), move || {
            let mut sel = Select::new();
            sel.recv(&r2);
            let v = sel.select().recv(&r2);
            taken2.store(true, Ordering::SeqCst);
            v
        });
        // Wait until the selection is blocked: a send then reserves the
        // message for it rather than leaving it for anyone.
        if corun_runtime::is_coroutine() {
            eventually(|| {
                corun_runtime::coroutines()
                    .iter()
                    .any(|c| c.wait_reason == WaitReason::Select)
            });
        } else {
            // A thread's wait cannot be observed: give it time to block. If
            // it has not, the send just buffers the message, which counts
            // all the same.
            sleep_ms(20);
        }
        s.send(7).unwrap();
        // Until the selector has run, the message is buffered and counted.
        let (len, empty, full) = (r.len(), r.is_empty(), s.is_full());
        assert!(
            (len, empty, full) == (1, false, true) || taken.load(Ordering::SeqCst),
            "len {len}, is_empty {empty}, is_full {full} before the selector took it"
        );
        assert_eq!(selector(), Ok(7));
        assert_eq!((r.len(), r.is_empty(), s.is_full()), (0, true, false));
    });
}

#[test]
fn error_texts_match_crossbeam() {
    assert_eq!(
        SendError(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(format!("{:?}", SendError(1)), "SendError(..)");
    assert_eq!(
        TrySendError::Full(1).to_string(),
        "sending on a full channel"
    );
    assert_eq!(
        TrySendError::Disconnected(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(format!("{:?}", TrySendError::Full(1)), "Full(..)");
    assert_eq!(
        SendTimeoutError::Timeout(1).to_string(),
        "timed out waiting on send operation"
    );
    assert_eq!(
        SendTimeoutError::Disconnected(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(
        RecvError.to_string(),
        "receiving on an empty and disconnected channel"
    );
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
    assert_eq!(
        TryRecvError::Disconnected.to_string(),
        "receiving on an empty and disconnected channel"
    );
    assert_eq!(
        RecvTimeoutError::Timeout.to_string(),
        "timed out waiting on receive operation"
    );
    assert_eq!(
        RecvTimeoutError::Disconnected.to_string(),
        "channel is empty and disconnected"
    );
    assert_eq!(
        TrySelectError.to_string(),
        "all operations in select would block"
    );
    assert_eq!(
        SelectTimeoutError.to_string(),
        "timed out waiting on select"
    );
    assert!(TrySendError::Full(1).is_full() && TrySendError::Disconnected(1).is_disconnected());
    assert!(SendTimeoutError::Timeout(1).is_timeout());
    assert!(TryRecvError::Empty.is_empty() && RecvTimeoutError::Disconnected.is_disconnected());
    assert_eq!(
        TrySendError::from(SendError(4)),
        TrySendError::Disconnected(4)
    );
    assert_eq!(
        RecvTimeoutError::from(RecvError),
        RecvTimeoutError::Disconnected
    );
}

#[test]
fn wait_reasons_are_reported() {
    corun_runtime::run(|| {
        let (_s, r) = bounded::<u32>(0);
        let (s2, _r2) = bounded::<u32>(0);
        let (done_s, done_r) = bounded::<()>(0);
        let d1 = done_r.clone();
        let a = corun_runtime::spawn(move || {
            select! {
                recv(r) -> _ => {}
                recv(d1) -> _ => {}
            }
        });
        let d2 = done_r.clone();
        let b = corun_runtime::spawn(move || {
            select! {
                send(s2, 1) -> _ => {}
                recv(d2) -> _ => {}
            }
        });
        let (s3, r3) = unbounded::<u32>();
        let c = corun_runtime::spawn(move || r3.recv());
        let mut seen = false;
        for _ in 0..1000 {
            let infos = corun_runtime::coroutines();
            let count = |w: WaitReason| infos.iter().filter(|c| c.wait_reason == w).count();
            if count(WaitReason::Select) >= 2 && count(WaitReason::ChanReceive) >= 1 {
                seen = true;
                break;
            }
            sleep_ms(2);
        }
        assert!(seen, "wait reasons not shown:\n{}", corun_runtime::dump());
        assert_eq!(WaitReason::ChanReceive.to_string(), "chan receive");
        drop(s3);
        assert_eq!(c.join().unwrap(), Err(RecvError));
        drop(done_s);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn select_api_blocked_arms_exchange_with_peers() {
    both(|| {
        // `Select` arms have no hand-off slot, so an unbuffered peer that
        // finds one waiting hands the value over through an exchange.
        let coro = corun_runtime::is_coroutine();
        for cap in [0usize, 2] {
            let (s, r) = bounded::<u32>(cap);
            let (idle_s, idle_r) = bounded::<u32>(0);
            let h = spawn(coro, move || {
                let mut got = Vec::new();
                for _ in 0..100 {
                    let mut sel = Select::new();
                    let i = sel.recv(&r);
                    sel.recv(&idle_r);
                    let op = sel.select();
                    assert_eq!(op.index(), i);
                    got.push(op.recv(&r).unwrap());
                }
                got
            });
            let h2 = spawn(coro, move || {
                for v in 100..200 {
                    let mut sel = Select::new();
                    let i = sel.send(&s);
                    let op = sel.select();
                    assert_eq!(op.index(), i);
                    op.send(&s, v).unwrap();
                }
            });
            let got = h();
            h2();
            assert_eq!(got, (100..200).collect::<Vec<_>>());
            drop(idle_s);
        }
    });
}
