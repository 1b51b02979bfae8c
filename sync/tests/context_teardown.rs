//! Contexts at their edges: a chain too long to drop recursively, and the
//! order in which a cancel publishes `done()` and `err()`.

use std::process::Command;

use corun_sync::context::Context;

/// Runs the test `name` of this binary in a child process with `CHILD`
/// set, and asserts it passed: a stack overflow aborts the process, which
/// a test cannot catch in its own.
fn in_child(name: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("CORUN_CONTEXT_TEST_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed in its child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child() -> bool {
    std::env::var_os("CORUN_CONTEXT_TEST_CHILD").is_some()
}

/// A long chain of derived contexts (Go programs add a value per hop in a
/// loop) must be droppable: the chain's nodes and cancel cores used to be
/// freed recursively, one stack frame per level, and overflowed a
/// coroutine's stack (or a thread's) and aborted the process.
#[test]
fn dropping_a_long_chain_of_contexts_does_not_overflow() {
    if !is_child() {
        return in_child("dropping_a_long_chain_of_contexts_does_not_overflow");
    }
    corun_runtime::run(|| {
        const DEPTH: usize = 200_000;
        // Values on top of a cancellable root.
        let (root, cancel) = Context::background().with_cancel();
        let mut ctx = root.clone();
        for i in 0..DEPTH {
            ctx = ctx.with_value(i);
        }
        assert_eq!(ctx.value::<usize>(), Some(&(DEPTH - 1)));
        drop(ctx);
        // Cancellable contexts, never cancelled: each core owns the next
        // in its children.
        let mut ctx = root.clone();
        let mut cancels = Vec::new();
        for _ in 0..DEPTH {
            let (c, f) = ctx.with_cancel();
            ctx = c;
            cancels.push(f);
        }
        drop(cancels);
        drop(ctx);
        drop(root);
        drop(cancel);
    });
}

/// Go's contract: "If Done is not yet closed, Err returns nil". A cancel
/// stored the error, released its lock, and only then closed the done
/// channel, so an observer could see `err()` set while `done()` was still
/// open (a `select!` on `done()` after checking `err()` then blocked).
#[test]
fn err_is_never_seen_before_done_is_closed() {
    use corun_sync::chan::TryRecvError;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut seen_open = 0;
    for _ in 0..20_000 {
        let (ctx, cancel) = Context::background().with_cancel();
        let go = Arc::new(AtomicBool::new(false));
        let canceller = {
            let go = go.clone();
            std::thread::spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                cancel.cancel();
            })
        };
        let done = ctx.done();
        go.store(true, Ordering::Release);
        while ctx.err().is_none() {
            std::hint::spin_loop();
        }
        if matches!(done.try_recv(), Err(TryRecvError::Empty)) {
            seen_open += 1;
        }
        canceller.join().unwrap();
    }
    assert_eq!(seen_open, 0, "err() set while done() was still open");
}
