//! Request deadlines chained through `Context`, as a Go service passes
//! `ctx` down every call:
//! `cargo run --release --example deadlines -- --budget-ms 300`.
//!
//! A request gets a budget; its handler calls a cache (own limit 50 ms)
//! and then a database (own limit 500 ms). A child's deadline is the
//! earlier of its own and its parent's, so the database call is cut at
//! whatever is left of the request's budget, and a socket read inside it
//! uses that same deadline as its timeout. Every wait is a `select!` on
//! the work and `ctx.done()`.

#[path = "support/flags.rs"]
mod flags;

use std::io::Read;
use std::time::{Duration, Instant};

use corun::chan::after;
use corun::context::{Context, ContextError};
use corun::net::{TcpListener, TcpStream};
use corun::select;
use flags::flag;

/// Simulated work that takes `cost`, abandoned when `ctx` ends.
fn call(
    ctx: &Context,
    what: &str,
    limit: Duration,
    cost: Duration,
) -> Result<String, ContextError> {
    let (ctx, _cancel) = ctx.with_timeout(limit);
    select! {
        recv(after(cost)) -> _ => Ok(format!("{what}: done in {} ms", cost.as_millis())),
        recv(ctx.done()) -> _ => Err(ctx.err().expect("done means an error is set")),
    }
}

/// A socket read bounded by the context's deadline, the way Go code calls
/// `conn.SetReadDeadline(ctx.Deadline())`.
fn read_reply(ctx: &Context, conn: &mut TcpStream) -> std::io::Result<usize> {
    if let Some(deadline) = ctx.deadline() {
        let left = deadline.saturating_duration_since(Instant::now());
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    }
    conn.read(&mut [0u8; 64])
}

fn handle(ctx: &Context, db_cost: Duration) -> Result<Vec<String>, ContextError> {
    let cache = call(
        ctx,
        "cache",
        Duration::from_millis(50),
        Duration::from_millis(1),
    )?;
    let db = call(ctx, "database", Duration::from_millis(500), db_cost)?;
    Ok(vec![cache, db])
}

fn main() {
    let budget = Duration::from_millis(flag("budget-ms", 300));
    corun::run(move || {
        // 1. A fast database: the request completes within its budget.
        let (ctx, _cancel) = Context::background().with_timeout(budget);
        let fast = handle(&ctx, budget / 10);
        println!("fast request: {fast:?}");
        assert!(fast.is_ok());

        // 2. A slow database (its own 500 ms limit would allow it): the
        // request's budget cuts it, and the error says why.
        let start = Instant::now();
        let (ctx, _cancel) = Context::background().with_timeout(budget);
        let slow = handle(&ctx, budget * 3);
        let took = start.elapsed();
        println!("slow request: {slow:?} after {} ms", took.as_millis());
        assert_eq!(slow, Err(ContextError::DeadlineExceeded));
        assert!(
            took >= budget && took < budget * 3,
            "cut at the budget, not later"
        );

        // 3. The deadline reaches I/O: a peer that never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _silent = listener.accept().unwrap();
        let start = Instant::now();
        let (ctx, _cancel) = Context::background().with_timeout(budget);
        let err = read_reply(&ctx, &mut conn).unwrap_err();
        println!(
            "silent peer: {:?} after {} ms",
            err.kind(),
            start.elapsed().as_millis()
        );
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        // 4. Cancelling the parent ends every call below it at once.
        let (ctx, cancel) = Context::background().with_cancel();
        let child = ctx.clone();
        let h = corun::go!(move || handle(&child, Duration::from_secs(5)));
        corun::sleep(Duration::from_millis(20));
        cancel.cancel();
        let cancelled = h.join().unwrap();
        println!("cancelled request: {cancelled:?}");
        assert_eq!(cancelled, Err(ContextError::Canceled));
        println!("ok: deadlines and cancellation propagate");
    });
}
