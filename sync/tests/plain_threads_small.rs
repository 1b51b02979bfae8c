//! Channels, select and the locks used from plain OS threads only, with a
//! handful of operations each: no coroutine runs and no runtime starts, so
//! the waiter queues, the hand-offs between threads and the thread-parking
//! paths run as they are, small enough for Miri (`scripts/miri`) as well
//! as for an ordinary test run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use corun_sync::chan::{
    RecvTimeoutError, Select, TryRecvError, TrySendError, bounded, select, unbounded,
};
use corun_sync::sync::{Barrier, Condvar, Mutex, Once, OnceLock, RwLock, Semaphore, WaitGroup};

/// Counts its drops, to check that every message is dropped exactly once.
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn rendezvous_ping_pong_between_two_threads() {
    let (ping_tx, ping_rx) = bounded::<u32>(0);
    let (pong_tx, pong_rx) = bounded::<u32>(0);
    let echo = thread::spawn(move || {
        for v in ping_rx.iter() {
            pong_tx.send(v + 1).unwrap();
        }
    });
    for i in 0..3 {
        ping_tx.send(i * 10).unwrap();
        assert_eq!(pong_rx.recv(), Ok(i * 10 + 1));
    }
    drop(ping_tx);
    echo.join().unwrap();
    assert!(
        pong_rx.recv().is_err(),
        "the echo thread dropped its sender"
    );
}

#[test]
fn buffered_messages_cross_threads_and_drop_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    for cap in [Some(1), Some(2), None] {
        let (tx, rx) = match cap {
            Some(c) => bounded::<Counted>(c),
            None => unbounded::<Counted>(),
        };
        let d = drops.clone();
        let sender = thread::spawn(move || {
            for i in 0..4 {
                tx.send(Counted(d.clone(), i)).unwrap();
            }
        });
        for i in 0..3 {
            assert_eq!(rx.recv().unwrap().1, i);
        }
        sender.join().unwrap();
        // One message left in the buffer, dropped with the channel.
        drop(rx);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 12);
}

#[test]
fn a_blocked_receiver_wakes_when_the_senders_leave() {
    let (tx, rx) = bounded::<u32>(0);
    let receiver = thread::spawn(move || rx.recv());
    // Whether the receiver has queued yet or not, the result is the same.
    thread::yield_now();
    drop(tx);
    assert!(receiver.join().unwrap().is_err());

    let (tx, rx) = bounded::<u32>(1);
    tx.send(1).unwrap();
    let sender = thread::spawn(move || tx.send(2));
    thread::yield_now();
    drop(rx);
    assert!(
        sender.join().unwrap().is_err(),
        "no receiver: the send fails"
    );
}

#[test]
fn a_value_handed_over_by_a_rendezvous_is_moved_intact() {
    // Larger than a pointer, with a destructor: the hand-off moves it
    // between the two threads' frames through the waiter's slot.
    let (tx, rx) = bounded::<(Vec<u8>, String, [u64; 4])>(0);
    let sender = thread::spawn(move || {
        for i in 0..2u8 {
            tx.send((vec![i; 3], format!("m{i}"), [u64::from(i); 4]))
                .unwrap();
        }
    });
    for i in 0..2u8 {
        let (v, s, a) = rx.recv().unwrap();
        assert_eq!((v, s, a), (vec![i; 3], format!("m{i}"), [u64::from(i); 4]));
    }
    sender.join().unwrap();
}

#[test]
fn select_over_channels_fed_by_other_threads() {
    let (tx1, rx1) = bounded::<u32>(0);
    let (tx2, rx2) = bounded::<u32>(0);
    let (tx3, rx3) = unbounded::<u32>();
    // Each thread hands its sender back rather than dropping it: an arm on
    // a disconnected channel would be ready too.
    let a = thread::spawn(move || tx1.send(1).map(|()| tx1).unwrap());
    let b = thread::spawn(move || tx2.send(2).map(|()| tx2).unwrap());
    let c = thread::spawn(move || tx3.send(3).map(|()| tx3).unwrap());
    let mut got = Vec::new();
    for _ in 0..3 {
        select! {
            recv(rx1) -> v => got.push(v.unwrap()),
            recv(rx2) -> v => got.push(v.unwrap()),
            recv(rx3) -> v => got.push(v.unwrap()),
        }
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3]);
    let (_tx1, _tx2, _tx3) = (a.join().unwrap(), b.join().unwrap(), c.join().unwrap());
}

#[test]
fn select_sends_to_a_waiting_receiver_and_receives_from_a_waiting_sender() {
    let (out_tx, out_rx) = bounded::<u32>(0);
    let (in_tx, in_rx) = bounded::<u32>(0);
    let receiver = thread::spawn(move || out_rx.recv().unwrap());
    let sender = thread::spawn(move || in_tx.send(7).unwrap());
    let (mut sent, mut received) = (false, None);
    while !sent || received.is_none() {
        let mut sel = Select::new();
        let s = (!sent).then(|| sel.send(&out_tx));
        let r = received.is_none().then(|| sel.recv(&in_rx));
        let op = sel.select();
        if Some(op.index()) == s {
            op.send(&out_tx, 5).unwrap();
            sent = true;
        } else {
            assert_eq!(Some(op.index()), r);
            received = Some(op.recv(&in_rx).unwrap());
        }
    }
    assert_eq!(receiver.join().unwrap(), 5);
    assert_eq!(received, Some(7));
    sender.join().unwrap();
}

#[test]
fn two_selecting_threads_meet_on_a_rendezvous_channel() {
    // Both sides wait in a select: the claimer hands its own context over
    // as the packet and the owner moves the value through it.
    let (tx, rx) = bounded::<String>(0);
    let (_keep, idle) = unbounded::<String>();
    let idle2 = idle.clone();
    let receiver = thread::spawn(move || {
        select! {
            recv(rx) -> v => v.unwrap(),
            recv(idle2) -> _ => unreachable!(),
        }
    });
    select! {
        send(tx, String::from("across")) -> r => r.unwrap(),
        recv(idle) -> _ => unreachable!(),
    }
    assert_eq!(receiver.join().unwrap(), "across");
}

#[test]
fn timeouts_give_up_and_leave_the_channel_usable() {
    let (tx, rx) = bounded::<u32>(0);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(tx.send_timeout(1, Duration::from_millis(1)).is_err());
    let mut sel = Select::new();
    sel.recv(&rx);
    assert!(sel.select_timeout(Duration::from_millis(1)).is_err());
    let sender = thread::spawn(move || tx.send(2).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(2));
    sender.join().unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn try_operations_never_block() {
    let (tx, rx) = bounded::<u32>(1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send(1).unwrap();
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    drop(rx);
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
}

#[test]
fn a_mutex_contended_by_three_threads_counts_exactly() {
    let m = Arc::new(Mutex::new(0u32));
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    let mut g = m.lock().unwrap();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock().unwrap(), 9);
}

#[test]
fn an_rwlock_shared_by_readers_and_a_writer() {
    let l = Arc::new(RwLock::new(vec![0u32]));
    let writer = {
        let l = l.clone();
        thread::spawn(move || {
            for i in 1..=2 {
                l.write().unwrap().push(i);
                thread::yield_now();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let l = l.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let g = l.read().unwrap();
                    assert!(g.iter().enumerate().all(|(i, v)| *v as usize == i));
                    thread::yield_now();
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(*l.read().unwrap(), [0, 1, 2]);
}

#[test]
fn a_condvar_wakes_its_waiters() {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let pair = pair.clone();
            thread::spawn(move || {
                let (m, cv) = &*pair;
                *cv.wait_while(m.lock().unwrap(), |n| *n == 0).unwrap()
            })
        })
        .collect();
    {
        let (m, cv) = &*pair;
        *m.lock().unwrap() = 4;
        cv.notify_all();
    }
    for w in waiters {
        assert_eq!(w.join().unwrap(), 4);
    }
    let (m, cv) = &*pair;
    let (_g, r) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(1))
        .unwrap();
    assert!(r.timed_out());
}

#[test]
fn a_semaphore_admits_one_thread_at_a_time() {
    let sem = Arc::new(Semaphore::new(1));
    let inside = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let (sem, inside) = (sem.clone(), inside.clone());
            thread::spawn(move || {
                let _p = sem.acquire();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                thread::yield_now();
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(sem.available_permits(), 1);
    let _all = sem.acquire();
    assert!(sem.acquire_timeout(Duration::from_millis(1)).is_none());
}

#[test]
fn a_wait_group_and_a_barrier_release_every_thread() {
    let wg = WaitGroup::new();
    let barrier = Arc::new(Barrier::new(3));
    let leaders = Arc::new(AtomicUsize::new(0));
    wg.add(3);
    for _ in 0..3 {
        let (wg, barrier, leaders) = (wg.clone(), barrier.clone(), leaders.clone());
        thread::spawn(move || {
            if barrier.wait().is_leader() {
                leaders.fetch_add(1, Ordering::SeqCst);
            }
            wg.done();
        });
    }
    wg.wait();
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
}

#[test]
fn once_and_once_lock_run_their_initialiser_once() {
    let once = Arc::new(Once::new());
    let cell = Arc::new(OnceLock::<String>::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let (once, cell, runs) = (once.clone(), cell.clone(), runs.clone());
            thread::spawn(move || {
                once.call_once(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                });
                cell.get_or_init(|| format!("from {i}")).len()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), "from 0".len());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(once.is_completed());
}
