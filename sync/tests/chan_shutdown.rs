//! Channels that outlive their coroutines' runtime. A coroutine blocked in a
//! channel operation when its runtime is dropped is abandoned: its stack is
//! leaked with its wait records still queued in the channel. Threads that
//! keep using the channel must pass those dead waiters by: no value is
//! handed to a coroutine that will never run, no receiver waits for a dead
//! `select!` to supply one, and nothing touches freed memory.

mod common;

use std::time::Duration;

use common::{abandon_while_parked, within_10s};
use corun_runtime::WaitReason;
use corun_sync::chan::{
    Select, SendTimeoutError, TryRecvError, TrySendError, bounded, select, unbounded,
};

#[test]
fn a_dead_receiver_takes_nothing() {
    // Bigger than the task cache's classes, so a freed task would really be
    // freed (as the run under valgrind that found this bug needed).
    let (tx, rx) = bounded::<[u64; 256]>(0);
    let rx2 = rx.clone();
    abandon_while_parked(WaitReason::ChanReceive, move || rx2.recv());
    assert!(matches!(tx.try_send([1; 256]), Err(TrySendError::Full(_))));
    let timed = tx.send_timeout([2; 256], Duration::from_millis(20));
    assert!(matches!(timed, Err(SendTimeoutError::Timeout(v)) if v[0] == 2));
    // A live receiver still gets what is sent after the dead one.
    let got = std::thread::spawn(move || rx.recv().unwrap());
    tx.send([3; 256]).unwrap();
    assert_eq!(got.join().unwrap()[0], 3);
}

#[test]
fn a_dead_sender_gives_nothing() {
    let (tx, rx) = bounded::<u32>(0);
    let tx2 = tx.clone();
    abandon_while_parked(WaitReason::ChanSend, move || tx2.send(7));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    assert_eq!(rx.len(), 0);
    std::thread::spawn(move || tx.send(8).unwrap());
    assert_eq!(rx.recv().unwrap(), 8);
}

#[test]
fn a_dead_sender_on_a_full_buffer_is_not_moved_in() {
    let (tx, rx) = bounded::<u32>(1);
    tx.send(1).unwrap();
    let tx2 = tx.clone();
    abandon_while_parked(WaitReason::ChanSend, move || tx2.send(2));
    // Taking the buffered message must not pull the dead sender's in.
    assert_eq!(rx.recv().unwrap(), 1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(3).unwrap();
    assert_eq!(rx.recv().unwrap(), 3);
}

#[test]
fn a_dead_select_send_arm_is_passed_by() {
    let (s0, r0) = bounded::<u64>(0);
    let (_s1, r1) = bounded::<u64>(0);
    abandon_while_parked(WaitReason::Select, move || {
        select! {
            send(s0, 1) -> _ => {},
            recv(r1) -> _ => {},
        }
    });
    // The receive once waited forever for the dead select to supply its
    // value; now it times out like any receive with no live sender.
    let r = within_10s(move || r0.recv_timeout(Duration::from_millis(20)));
    assert!(r.is_err());
}

#[test]
fn dead_select_recv_arms_are_passed_by() {
    let (s0, r0) = unbounded::<u64>();
    let (s1, r1) = bounded::<u64>(0);
    let (r0b, r1b) = (r0.clone(), r1.clone());
    abandon_while_parked(WaitReason::Select, move || {
        let mut sel = Select::new();
        sel.recv(&r0b);
        sel.recv(&r1b);
        // Held, not completed: the coroutine never returns from `select`.
        sel.select().index()
    });
    // No message is reserved for the dead select.
    s0.send(5).unwrap();
    assert_eq!(r0.try_recv(), Ok(5));
    assert!(matches!(s1.try_send(6), Err(TrySendError::Full(6))));
    let got = std::thread::spawn(move || r1.recv().unwrap());
    s1.send(9).unwrap();
    assert_eq!(got.join().unwrap(), 9);
}

#[test]
fn a_dead_observer_is_passed_by() {
    let (s, r) = bounded::<u64>(0);
    let r2 = r.clone();
    abandon_while_parked(WaitReason::Select, move || {
        let mut sel = Select::new();
        sel.recv(&r2);
        sel.ready()
    });
    assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    let got = std::thread::spawn(move || r.recv().unwrap());
    s.send(2).unwrap();
    assert_eq!(got.join().unwrap(), 2);
}
