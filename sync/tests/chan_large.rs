//! Large messages through every path of every flavour, on 256 KiB stacks
//! (a coroutine's default), both in coroutines and on OS threads.
//!
//! A channel holds one copy of a message on each side's stack (the sender's
//! value, the receiver's result), not one per internal step: these 48 KiB
//! messages overflowed a 256 KiB stack when the send and receive paths kept
//! several copies (24 KiB was the largest that fit). 48 KiB is what fits
//! crossbeam-channel on a 256 KiB thread. Unoptimised builds copy a value
//! at every step of every function, so these tests run only optimised
//! (`cargo test --release`, as CI does).

use std::time::Duration;

use corun_sync::chan::*;

const SIZE: usize = 48 << 10;
const STACK: usize = 256 << 10;

/// A message whose every byte is its tag, so a mixed-up or torn message
/// shows.
struct Big([u8; SIZE]);

#[inline(never)]
fn big(tag: u8) -> Big {
    Big([tag; SIZE])
}

#[inline(never)]
fn assert_tag(m: &Big, tag: u8) {
    assert!(
        m.0.iter().all(|&b| b == tag),
        "message {tag} arrived damaged"
    );
}

/// Runs `f` in a coroutine and on an OS thread, each with a 256 KiB stack.
fn on_small_stacks(f: fn(bool)) {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || f(false))
        .unwrap()
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    corun_runtime::Builder::new()
        .stack_size(STACK)
        .spawn(move || f(true))
        .unwrap()
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

/// Runs `f` beside the caller, as the caller runs: a coroutine or a thread
/// with a 256 KiB stack. Returns its join.
fn beside(coro: bool, f: impl FnOnce() + Send + 'static) -> Box<dyn FnOnce()> {
    if coro {
        let h = corun_runtime::Builder::new()
            .stack_size(STACK)
            .spawn(f)
            .unwrap();
        Box::new(move || h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    } else {
        let h = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(f)
            .unwrap();
        Box::new(move || h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }
}

fn pause() {
    corun_runtime::sleep(Duration::from_millis(5));
}

// Each step is a function of its own, so that the test's own frames hold
// one message or two, whatever the optimiser would merge.

#[inline(never)]
fn send(s: &Sender<Big>, tag: u8) {
    s.send(big(tag)).unwrap();
}

#[inline(never)]
fn recv(r: &Receiver<Big>, tag: u8) {
    assert_tag(&r.recv().unwrap(), tag);
}

#[inline(never)]
fn try_send(s: &Sender<Big>, tag: u8) {
    s.try_send(big(tag)).unwrap();
}

#[inline(never)]
fn try_recv(r: &Receiver<Big>, tag: u8) {
    assert_tag(&r.try_recv().unwrap(), tag);
}

#[inline(never)]
fn select_recv(r: &Receiver<Big>, tag: u8) {
    select! {
        recv(r) -> m => assert_tag(&m.unwrap(), tag),
    }
}

#[inline(never)]
fn select_send(s: &Sender<Big>, tag: u8) {
    select! {
        send(s, big(tag)) -> res => res.unwrap(),
    }
}

#[inline(never)]
fn selected_send(s: &Sender<Big>, tag: u8) {
    let mut sel = Select::new();
    sel.send(s);
    sel.select().send(s, big(tag)).unwrap();
}

#[inline(never)]
fn selected_recv(r: &Receiver<Big>, tag: u8) {
    let mut sel = Select::new();
    sel.recv(r);
    assert_tag(&sel.select().recv(r).unwrap(), tag);
}

#[inline(never)]
fn send_times_out(s: &Sender<Big>, tag: u8) {
    match s.send_timeout(big(tag), Duration::from_millis(2)) {
        Err(SendTimeoutError::Timeout(m)) => assert_tag(&m, tag),
        _ => panic!("a full channel took the message"),
    }
}

#[inline(never)]
fn try_send_is_refused(s: &Sender<Big>, tag: u8) {
    match s.try_send(big(tag)) {
        Err(TrySendError::Full(m)) => assert_tag(&m, tag),
        _ => panic!("a full channel took the message"),
    }
}

#[inline(never)]
fn send_after_close_is_refused(s: &Sender<Big>, tag: u8) {
    assert_tag(&s.send(big(tag)).unwrap_err().into_inner(), tag);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "unoptimised code keeps a copy of the message per step"
)]
fn buffered_without_waiting() {
    on_small_stacks(|_| {
        for (s, r) in [unbounded(), bounded(2)] {
            send(&s, 1);
            try_send(&s, 2);
            recv(&r, 1);
            try_recv(&r, 2);
        }
    });
}

/// `send` waits (for room in a buffer of `cap`, or for a receiver) until a
/// receiver beside the caller takes what is buffered and then its message.
fn sender_waits(coro: bool, cap: usize, send_with: fn(&Sender<Big>, u8)) {
    let (s, r) = bounded(cap);
    if cap > 0 {
        send(&s, 1);
    }
    let rx = beside(coro, move || {
        pause();
        if cap > 0 {
            recv(&r, 1);
        }
        recv(&r, 2);
    });
    send_with(&s, 2);
    rx();
}

/// `recv` waits until a sender beside the caller sends.
fn receiver_waits(coro: bool, cap: usize, recv_with: fn(&Receiver<Big>, u8)) {
    let (s, r) = bounded(cap);
    let tx = beside(coro, move || {
        pause();
        send(&s, 3);
    });
    recv_with(&r, 3);
    tx();
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "unoptimised code keeps a copy of the message per step"
)]
fn blocked_sender_and_blocked_receiver() {
    on_small_stacks(|coro| {
        for cap in [0, 1] {
            sender_waits(coro, cap, send);
            receiver_waits(coro, cap, recv);
        }
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "unoptimised code keeps a copy of the message per step"
)]
fn select_macro_arms() {
    on_small_stacks(|coro| {
        for cap in [0, 1] {
            // A send arm that waits; a receive arm that waits, which the
            // sender fills directly.
            sender_waits(coro, cap, select_send);
            receiver_waits(coro, cap, select_recv);
        }
    });
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "unoptimised code keeps a copy of the message per step"
)]
fn select_operations_and_failures_give_the_message_back() {
    on_small_stacks(|_| {
        let (s, r) = bounded(1);
        selected_send(&s, 7);
        selected_recv(&r, 7);
        send(&s, 8);
        send_times_out(&s, 9);
        try_send_is_refused(&s, 10);
        s.close();
        send_after_close_is_refused(&s, 11);
        recv(&r, 8);
        assert!(r.recv_timeout(Duration::from_millis(2)).is_err());
    });
}
