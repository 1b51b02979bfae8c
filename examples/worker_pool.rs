//! A worker pool with a bounded queue, backpressure and dynamic scaling:
//! `cargo run --release --example worker_pool -- --jobs 2000 --max-workers 8`.
//!
//! The submitter blocks when the queue is full (backpressure, like a full
//! buffered channel in Go). A supervisor adds a worker while the queue
//! stays more than half full, up to `--max-workers`; a worker that finds
//! no job for `--idle-ms` retires, down to `--min-workers`.

#[path = "support/flags.rs"]
mod flags;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corun::chan::{Receiver, RecvTimeoutError, Sender, bounded};
use corun::sync::WaitGroup;
use corun::{go, select};
use flags::flag;

struct Pool {
    jobs: Receiver<u64>,
    results: Sender<u64>,
    live: AtomicUsize,
    peak: AtomicUsize,
    min: usize,
    idle: Duration,
    workers: WaitGroup,
}

impl Pool {
    /// Starts a worker if fewer than `max` are live.
    fn grow(self: &Arc<Self>, max: usize) -> bool {
        let n = self.live.fetch_add(1, Ordering::SeqCst);
        if n >= max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.peak.fetch_max(n + 1, Ordering::SeqCst);
        let pool = self.clone();
        self.workers.add(1);
        go!(move || {
            pool.work();
            pool.workers.done();
        });
        true
    }

    fn work(&self) {
        loop {
            match self.jobs.recv_timeout(self.idle) {
                // The "work": a little computation and a short wait.
                Ok(job) => {
                    corun::sleep(Duration::from_micros(200));
                    self.results.send(job * job).unwrap();
                }
                Err(RecvTimeoutError::Timeout) => {
                    // Retire unless that would leave fewer than `min`.
                    let n = self.live.fetch_sub(1, Ordering::SeqCst);
                    if n > self.min {
                        return;
                    }
                    self.live.fetch_add(1, Ordering::SeqCst);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.live.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

fn main() {
    let jobs: u64 = flag("jobs", 2000);
    let queue: usize = flag("queue", 32);
    let min: usize = flag("min-workers", 1);
    let max: usize = flag("max-workers", 8);
    let idle = Duration::from_millis(flag("idle-ms", 20));
    corun::run(move || {
        let (submit, queued) = bounded::<u64>(queue);
        let (results, collected) = bounded::<u64>(queue);
        let pool = Arc::new(Pool {
            jobs: queued.clone(),
            results,
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            min,
            idle,
            workers: WaitGroup::new(),
        });
        for _ in 0..min {
            pool.grow(max);
        }
        let start = Instant::now();
        let submitter = go!(move || {
            for j in 0..jobs {
                submit.send(j).unwrap(); // blocks while the queue is full
            }
            submit // closing it is the shutdown signal; kept until then
        });
        let (stop, stopped) = bounded::<()>(0);
        let supervisor = {
            let pool = pool.clone();
            go!(move || {
                let tick = corun::chan::tick(Duration::from_millis(1));
                loop {
                    select! {
                        recv(stopped) -> _ => return,
                        recv(tick) -> _ => {
                            if queued.len() > queued.capacity().unwrap_or(0) / 2 {
                                pool.grow(max);
                            }
                        }
                    }
                }
            })
        };
        let mut sum = 0u64;
        for _ in 0..jobs {
            sum += collected.recv().unwrap();
        }
        let took = start.elapsed();
        let submit = submitter.join().unwrap();
        drop(stop);
        supervisor.join().unwrap();
        let peak = pool.peak.load(Ordering::SeqCst);
        // Let idle workers retire down to the minimum (each needs one idle
        // period; allow many on a busy machine), then close the queue.
        for _ in 0..100 {
            if pool.live.load(Ordering::SeqCst) <= min {
                break;
            }
            corun::sleep(idle);
        }
        let after_idle = pool.live.load(Ordering::SeqCst);
        let expected: u64 = (0..jobs).map(|j| j * j).sum();
        assert_eq!(sum, expected, "a job was lost or done twice");
        println!(
            "worker pool: {jobs} jobs in {:.0} ms, workers {min} -> peak {peak} -> {after_idle} after idling (max {max})",
            took.as_secs_f64() * 1e3
        );
        // Shutdown: close the queue; the workers drain it and exit.
        drop(submit);
        pool.workers.wait();
        assert_eq!(pool.live.load(Ordering::SeqCst), 0);
        println!("ok: every result checked");
    });
}
