//! Task memory is recycled: a second wave of coroutines reuses the first
//! wave's task blocks instead of carving new memory. Alone in its binary,
//! since the figure is process-wide.

use corun_runtime::{Runtime, stats};

fn wave(rt: &Runtime, n: usize) {
    let hs: Vec<_> = (0..n).map(|i| rt.spawn(move || i * 2)).collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i * 2);
    }
}

#[test]
fn a_second_wave_reuses_the_first_waves_task_memory() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let before = stats().task_bytes_retained;
    wave(&rt, 50_000);
    let first = stats().task_bytes_retained - before;
    // 50,000 live tasks of a few hundred bytes each.
    assert!(first >= 50_000 * 100, "first wave carved {first} bytes");
    for _ in 0..5 {
        wave(&rt, 50_000);
    }
    let more = stats().task_bytes_retained - before - first;
    assert!(
        more <= first / 4,
        "five more waves carved {more} bytes after the first's {first}"
    );
}
