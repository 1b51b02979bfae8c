//! Property test: random sequences of non-blocking operations (try_send,
//! try_recv, their select! forms, close, clone and drop of either end) on
//! bounded, unbounded and zero-capacity channels, checked step by step
//! against a simple model, on a plain thread and inside a coroutine.
//!
//! Selects with a short timeout are in the mix too: nobody else touches the
//! channel, so they must end as the non-blocking ones do, and one that
//! blocks registers on the channel, which from then on keeps the lock-free
//! readiness hint that later selects' first pass trusts.

use std::collections::VecDeque;
use std::time::Duration;

use corun_sync::chan::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    TrySend(usize, u8),
    SelectSend(usize, u8),
    TryRecv(usize),
    SelectRecv(usize),
    TimedSelectSend(usize, u8),
    TimedSelectRecv(usize),
    Close(usize),
    CloneSender(usize),
    CloneReceiver(usize),
    DropSender(usize),
    DropReceiver(usize),
    Inspect(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::TrySend(i, v)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::SelectSend(i, v)),
        4 => any::<usize>().prop_map(Op::TryRecv),
        2 => any::<usize>().prop_map(Op::SelectRecv),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::TimedSelectSend(i, v)),
        1 => any::<usize>().prop_map(Op::TimedSelectRecv),
        1 => any::<usize>().prop_map(Op::Close),
        1 => any::<usize>().prop_map(Op::CloneSender),
        1 => any::<usize>().prop_map(Op::CloneReceiver),
        1 => any::<usize>().prop_map(Op::DropSender),
        1 => any::<usize>().prop_map(Op::DropReceiver),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Op::Inspect(i, j)),
    ]
}

#[derive(Debug, PartialEq)]
enum SendOutcome {
    Ok,
    Full(u8),
    Disconnected(u8),
}

#[derive(Debug, PartialEq)]
enum RecvOutcome {
    Ok(u8),
    Empty,
    Disconnected,
}

struct Model {
    cap: Option<usize>,
    buf: VecDeque<u8>,
    senders: usize,
    receivers: usize,
    closed: bool,
}

impl Model {
    fn send(&mut self, v: u8) -> SendOutcome {
        if self.closed || self.receivers == 0 {
            SendOutcome::Disconnected(v)
        } else if self.cap.is_some_and(|c| self.buf.len() >= c) {
            // Capacity 0 included: nobody else is there to receive.
            SendOutcome::Full(v)
        } else {
            self.buf.push_back(v);
            SendOutcome::Ok
        }
    }

    fn recv(&mut self) -> RecvOutcome {
        match self.buf.pop_front() {
            Some(v) => RecvOutcome::Ok(v),
            None if self.closed => RecvOutcome::Disconnected,
            None => RecvOutcome::Empty,
        }
    }
}

/// How long a timed select waits: long enough that it usually gets to
/// register before its deadline, short enough for thousands of cases.
const WAIT: Duration = Duration::from_micros(20);

/// `select!` over one send, with `default` or `default(wait)`.
fn select_send(s: &Sender<u8>, v: u8, wait: Option<Duration>) -> SendOutcome {
    let outcome = |res: Result<(), SendError<u8>>| match res {
        Ok(()) => SendOutcome::Ok,
        Err(e) => SendOutcome::Disconnected(e.into_inner()),
    };
    match wait {
        None => select! {
            send(s, v) -> res => outcome(res),
            default => SendOutcome::Full(v),
        },
        Some(wait) => select! {
            send(s, v) -> res => outcome(res),
            default(wait) => SendOutcome::Full(v),
        },
    }
}

/// `select!` over one receive, with `default` or `default(wait)`.
fn select_recv(r: &Receiver<u8>, wait: Option<Duration>) -> RecvOutcome {
    let outcome = |res: Result<u8, RecvError>| match res {
        Ok(v) => RecvOutcome::Ok(v),
        Err(_) => RecvOutcome::Disconnected,
    };
    match wait {
        None => select! {
            recv(r) -> v => outcome(v),
            default => RecvOutcome::Empty,
        },
        Some(wait) => select! {
            recv(r) -> v => outcome(v),
            default(wait) => RecvOutcome::Empty,
        },
    }
}

fn run_ops(cap: Option<usize>, ops: &[Op]) {
    let (s, r) = match cap {
        Some(c) => bounded::<u8>(c),
        None => unbounded(),
    };
    let mut ss = vec![s];
    let mut rs = vec![r];
    let mut m = Model {
        cap,
        buf: VecDeque::new(),
        senders: 1,
        receivers: 1,
        closed: false,
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?} (cap {cap:?})");
        match *op {
            Op::TrySend(i, v) if !ss.is_empty() => {
                let got = match ss[i % ss.len()].try_send(v) {
                    Ok(()) => SendOutcome::Ok,
                    Err(TrySendError::Full(x)) => SendOutcome::Full(x),
                    Err(TrySendError::Disconnected(x)) => SendOutcome::Disconnected(x),
                };
                assert_eq!(got, m.send(v), "{ctx}");
            }
            Op::SelectSend(i, v) if !ss.is_empty() => {
                let got = select_send(&ss[i % ss.len()], v, None);
                assert_eq!(got, m.send(v), "{ctx}");
            }
            Op::TimedSelectSend(i, v) if !ss.is_empty() => {
                let got = select_send(&ss[i % ss.len()], v, Some(WAIT));
                assert_eq!(got, m.send(v), "{ctx}");
            }
            Op::TryRecv(i) if !rs.is_empty() => {
                let got = match rs[i % rs.len()].try_recv() {
                    Ok(v) => RecvOutcome::Ok(v),
                    Err(TryRecvError::Empty) => RecvOutcome::Empty,
                    Err(TryRecvError::Disconnected) => RecvOutcome::Disconnected,
                };
                assert_eq!(got, m.recv(), "{ctx}");
            }
            Op::SelectRecv(i) if !rs.is_empty() => {
                let got = select_recv(&rs[i % rs.len()], None);
                assert_eq!(got, m.recv(), "{ctx}");
            }
            Op::TimedSelectRecv(i) if !rs.is_empty() => {
                let got = select_recv(&rs[i % rs.len()], Some(WAIT));
                assert_eq!(got, m.recv(), "{ctx}");
            }
            Op::Close(i) if !ss.is_empty() => {
                assert_eq!(ss[i % ss.len()].close(), !m.closed, "{ctx}");
                m.closed = true;
            }
            Op::CloneSender(i) if !ss.is_empty() => {
                let c = ss[i % ss.len()].clone();
                ss.push(c);
                m.senders += 1;
            }
            Op::CloneReceiver(i) if !rs.is_empty() => {
                let c = rs[i % rs.len()].clone();
                rs.push(c);
                m.receivers += 1;
            }
            Op::DropSender(i) if !ss.is_empty() => {
                ss.swap_remove(i % ss.len());
                m.senders -= 1;
                if m.senders == 0 {
                    m.closed = true;
                }
            }
            Op::DropReceiver(i) if !rs.is_empty() => {
                rs.swap_remove(i % rs.len());
                m.receivers -= 1;
                if m.receivers == 0 {
                    m.buf.clear();
                }
            }
            Op::Inspect(i, j) => {
                if !ss.is_empty() {
                    let s = &ss[i % ss.len()];
                    assert_eq!(s.len(), m.buf.len(), "{ctx}");
                    assert_eq!(s.is_empty(), m.buf.is_empty(), "{ctx}");
                    assert_eq!(s.capacity(), cap, "{ctx}");
                    assert_eq!(s.is_closed(), m.closed || m.receivers == 0, "{ctx}");
                    let full = cap.is_some_and(|c| m.buf.len() >= c);
                    assert_eq!(s.is_full(), full, "{ctx}");
                }
                if !rs.is_empty() {
                    let r = &rs[j % rs.len()];
                    assert_eq!(r.len(), m.buf.len(), "{ctx}");
                    assert_eq!(r.is_closed(), m.closed, "{ctx}");
                }
            }
            _ => {}
        }
    }
}

fn cap() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(Some(0)), Just(Some(1)), Just(Some(3)), Just(None)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_model_on_a_thread(cap in cap(), ops in prop::collection::vec(op(), 1..80)) {
        run_ops(cap, &ops);
    }

    #[test]
    fn matches_model_in_a_coroutine(cap in cap(), ops in prop::collection::vec(op(), 1..80)) {
        corun_runtime::run(move || run_ops(cap, &ops));
    }
}
