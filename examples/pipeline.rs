//! A fan-out/fan-in pipeline with error propagation and cancellation:
//! `cargo run --release --example pipeline -- --items 10000 --stages 4 [--fail-at 1234]`.
//!
//! generate -> N parallel workers -> merge -> sum. Every stage runs in an
//! `ErrGroup` sharing one `Context`; the first stage to fail cancels the
//! context, every other stage sees `ctx.done()` in its `select!` and
//! stops, and `wait()` returns that first error, like Go's errgroup.

#[path = "support/flags.rs"]
mod flags;

use std::fmt;

use corun::chan::{Receiver, Sender, bounded};
use corun::context::{Context, ErrGroup};
use corun::select;
use flags::flag;

#[derive(Debug, Clone, PartialEq)]
enum PipelineError {
    BadItem(u64),
    Cancelled(&'static str),
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::BadItem(i) => write!(f, "item {i} cannot be processed"),
            PipelineError::Cancelled(stage) => write!(f, "{stage} stopped: cancelled"),
        }
    }
}

/// Sends `v` unless the context is cancelled first.
fn send(
    ctx: &Context,
    out: &Sender<u64>,
    v: u64,
    stage: &'static str,
) -> Result<(), PipelineError> {
    select! {
        send(out, v) -> r => r.map_err(|_| PipelineError::Cancelled(stage)),
        recv(ctx.done()) -> _ => Err(PipelineError::Cancelled(stage)),
    }
}

fn generate(ctx: Context, items: u64, out: Sender<u64>) -> Result<(), PipelineError> {
    for i in 0..items {
        send(&ctx, &out, i, "generate")?;
    }
    Ok(())
}

fn square(
    ctx: Context,
    fail_at: Option<u64>,
    input: Receiver<u64>,
    out: Sender<u64>,
) -> Result<(), PipelineError> {
    loop {
        let v = select! {
            recv(input) -> v => match v {
                Ok(v) => v,
                Err(_) => return Ok(()), // upstream finished
            },
            recv(ctx.done()) -> _ => return Err(PipelineError::Cancelled("square")),
        };
        if Some(v) == fail_at {
            return Err(PipelineError::BadItem(v));
        }
        send(&ctx, &out, v * v, "square")?;
    }
}

fn main() {
    let items: u64 = flag("items", 10_000);
    let stages: usize = flag("stages", 4);
    let fail_at: Option<u64> = Some(flag("fail-at", u64::MAX)).filter(|&f| f != u64::MAX);
    corun::run(move || {
        let (group, ctx) = ErrGroup::<PipelineError>::with_context(&Context::background());
        let (numbers_tx, numbers_rx) = bounded(16);
        let (squares_tx, squares_rx) = bounded(16);
        {
            let ctx = ctx.clone();
            group.go(move || generate(ctx, items, numbers_tx));
        }
        for _ in 0..stages {
            let (ctx, input, out) = (ctx.clone(), numbers_rx.clone(), squares_tx.clone());
            group.go(move || square(ctx, fail_at, input, out));
        }
        drop((numbers_rx, squares_tx));
        // Fan-in: the sum ends when every worker has dropped its sender,
        // or early when the context is cancelled.
        let (mut sum, mut seen) = (0u64, 0u64);
        loop {
            select! {
                recv(squares_rx) -> v => match v {
                    Ok(v) => { sum += v; seen += 1; }
                    Err(_) => break,
                },
                recv(ctx.done()) -> _ => break,
            }
        }
        drop(squares_rx); // unblocks any worker still sending
        match group.wait() {
            Ok(()) => {
                let expected: u64 = (0..items).map(|i| i * i).sum();
                assert_eq!(
                    (seen, sum),
                    (items, expected),
                    "an item was lost or doubled"
                );
                println!("pipeline: {items} items through {stages} workers, sum of squares {sum}");
                println!("ok: complete and checked");
            }
            Err(e) => {
                assert!(ctx.err().is_some(), "an error must cancel the context");
                println!("pipeline: failed after {seen} of {items} items: {e}");
                println!("ok: the first error was returned and every stage stopped");
            }
        }
    });
}
