//! `ErrGroup`: run fallible tasks in parallel, limit how many run at once,
//! return the first error and cancel the rest (Go's errgroup):
//! `cargo run --release --example errgroup -- --tasks 50 --limit 8 [--fail 17]`.

#[path = "support/flags.rs"]
mod flags;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corun::chan::after;
use corun::context::{Context, ErrGroup};
use corun::select;
use flags::flag;

fn main() {
    let tasks: usize = flag("tasks", 50);
    let limit: usize = flag("limit", 8);
    let fail: usize = flag("fail", usize::MAX);
    corun::run(move || {
        let (group, ctx) = ErrGroup::<String>::with_context(&Context::background());
        group.set_limit(limit);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        for t in 0..tasks {
            let (ctx, running, most, finished) =
                (ctx.clone(), running.clone(), most.clone(), finished.clone());
            // Waits for a free slot once `limit` tasks run.
            group.go(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // A "fetch" of 5 ms, abandoned if the group is cancelled.
                let r = select! {
                    recv(after(Duration::from_millis(5))) -> _ => {
                        if t == fail { Err(format!("task {t} failed")) } else { Ok(()) }
                    }
                    recv(ctx.done()) -> _ => Err(format!("task {t} cancelled")),
                };
                running.fetch_sub(1, Ordering::SeqCst);
                if r.is_ok() {
                    finished.fetch_add(1, Ordering::SeqCst);
                }
                r
            });
        }
        let result = group.wait();
        let most = most.load(Ordering::SeqCst);
        let finished = finished.load(Ordering::SeqCst);
        println!(
            "errgroup: {tasks} tasks, at most {most} at once (limit {limit}), {finished} finished, in {} ms: {result:?}",
            start.elapsed().as_millis()
        );
        assert!(most <= limit, "the limit was exceeded");
        match result {
            Ok(()) => assert_eq!(finished, tasks),
            Err(e) => {
                assert_eq!(e, format!("task {fail} failed"), "the first error wins");
                assert!(ctx.err().is_some() && finished < tasks);
            }
        }
        println!("ok");
    });
}
