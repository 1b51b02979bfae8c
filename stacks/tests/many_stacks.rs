//! 200,000 guarded stacks live at once: mappings and RSS stay small.

use corun_stacks::{DEFAULT_STACK_SIZE, Stack};

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn two_hundred_thousand_guarded_stacks() {
    const N: usize = 200_000;
    let mut held = Vec::with_capacity(N);
    let (maps0, rss0) = (maps(), rss());
    for _ in 0..N {
        let s = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        // A parked coroutine has touched the top of its stack.
        // SAFETY: inside the usable part of a slot we own.
        unsafe { std::ptr::write_volatile((s.top() - 256) as *mut u64, 1) };
        held.push(s);
    }
    let (maps1, rss1) = (maps(), rss());
    let per = (rss1 - rss0 - N * std::mem::size_of::<Stack>()) / N;
    eprintln!(
        "{N} stacks: maps {maps0} -> {maps1}, {per} bytes RSS per stack, guard mode {:?}",
        corun_stacks::guard_mode()
    );
    assert!(maps1 - maps0 < 300, "maps grew from {maps0} to {maps1}");
    assert!(per < 8 * 1024, "{per} bytes per stack");
}
