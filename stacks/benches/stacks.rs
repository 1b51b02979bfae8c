//! Stack pool and context-switch benchmarks.

use corun_stacks::Stack;
use corun_stacks::fiber::{Fiber, suspend};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn acquire_release(c: &mut Criterion) {
    c.bench_function("acquire_release_pooled", |b| {
        b.iter(|| drop(Stack::new(256 * 1024).unwrap()))
    });
}

fn fresh_first_use(c: &mut Criterion) {
    // Hold many stacks so each acquisition takes a never-used or fully
    // released slot, then touch its top page as a starting coroutine does.
    c.bench_function("fresh_stack_first_use", |b| {
        b.iter_batched(
            || Vec::with_capacity(4096),
            |mut held: Vec<Stack>| {
                for _ in 0..4096 {
                    let s = Stack::new(256 * 1024).unwrap();
                    // SAFETY: inside the usable part of a slot we own.
                    unsafe { std::ptr::write_volatile((s.top() - 256) as *mut u64, 1) };
                    held.push(s);
                }
                held
            },
            BatchSize::PerIteration,
        )
    });
}

fn round_trip(c: &mut Criterion) {
    let mut f = Fiber::new(Stack::new(64 * 1024).unwrap(), || {
        loop {
            suspend(1)
        }
    });
    c.bench_function("fiber_resume_suspend", |b| b.iter(|| f.resume()));
}

/// Releasing the deep pages of a used stack, then faulting them back in:
/// what a recycled stack costs under each advice.
fn release_advice(c: &mut Criterion) {
    let mut g = c.benchmark_group("release_then_reuse_64k");
    for (name, advice) in [("dontneed", libc::MADV_DONTNEED), ("free", libc::MADV_FREE)] {
        let s = Stack::new(256 * 1024).unwrap();
        let (lo, len) = (s.top() - 80 * 1024, 64 * 1024);
        g.bench_function(name, |b| {
            b.iter(|| {
                for a in (lo..lo + len).step_by(4096) {
                    // SAFETY: inside the usable part of a slot we own.
                    unsafe { std::ptr::write_volatile(a as *mut u8, 1) };
                }
                // SAFETY: the range lies in a slot we own; its contents are
                // scratch.
                unsafe { libc::madvise(lo as *mut libc::c_void, len, advice) };
            })
        });
    }
}

criterion_group!(
    benches,
    acquire_release,
    fresh_first_use,
    round_trip,
    release_advice
);
criterion_main!(benches);
