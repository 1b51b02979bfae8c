//! Overflow reports, deep recursion through `grow`, and the mprotect
//! fallback with its vm.max_map_count limit, each in a child process.

use std::process::{Command, Output};

use corun_stacks::Stack;
use corun_stacks::fiber::Fiber;

const CHILD: &str = "CORUN_STACKS_CHILD";

fn child(name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "children", "--nocapture", "--test-threads=1"])
        .env(CHILD, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 32]);
    if n == 0 {
        pad[1]
    } else {
        recurse(n - 1).wrapping_add(pad[2])
    }
}

/// Recursion using about `bytes` of frames, extended through `grow`.
#[inline(never)]
fn deep(depth: u64) -> u64 {
    corun_stacks::grow(64 * 1024, 4 << 20, || {
        let pad = std::hint::black_box([depth; 96]);
        if depth == 0 {
            1
        } else {
            deep(depth - 1) + u64::from(pad[5] == u64::MAX)
        }
    })
}

/// The entry point of children; a no-op in the parent.
#[test]
fn children() {
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    match which.as_str() {
        "fiber-overflow" => {
            let mut stack = Stack::new(64 * 1024).unwrap();
            stack.set_label(7, "deep");
            let mut f = Fiber::new(stack, || {
                std::hint::black_box(recurse(u64::MAX));
            });
            f.resume();
            println!("unreachable");
        }
        "grow" => {
            // ~1 KiB per frame: 262,144 frames is 256 MiB, on a plain thread
            // and inside a fiber with a 64 KiB stack.
            let t = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(|| deep(262_144))
                .unwrap();
            println!("thread: {}", t.join().unwrap());
            let out = std::rc::Rc::new(std::cell::Cell::new(0));
            let o = out.clone();
            let mut f = Fiber::new(Stack::new(64 * 1024).unwrap(), move || o.set(deep(262_144)));
            f.resume();
            println!("fiber: {}", out.get());
        }
        "mprotect" => {
            assert_eq!(
                corun_stacks::guard_mode(),
                corun_stacks::GuardMode::Mprotect
            );
            let mut held = Vec::new();
            let err = loop {
                match Stack::new(16 * 1024) {
                    Ok(s) => held.push(s),
                    Err(e) => break e,
                }
                assert!(held.len() < 100_000, "max_map_count never reached");
            };
            println!("held {} then: {err}", held.len());
            // The process is fine: released slots (their guards stay in
            // place, so they cost no new mappings) are handed out again.
            held.truncate(held.len() / 2);
            corun_stacks::trim();
            let mut f = Fiber::new(Stack::new(16 * 1024).unwrap(), || ());
            f.resume();
            println!("still works");
        }
        "mprotect-overflow" => {
            assert_eq!(
                corun_stacks::guard_mode(),
                corun_stacks::GuardMode::Mprotect
            );
            let mut stack = Stack::new(32 * 1024).unwrap();
            stack.set_label(9, "prot");
            let mut f = Fiber::new(stack, || {
                std::hint::black_box(recurse(u64::MAX));
            });
            f.resume();
        }
        other => panic!("unknown child {other}"),
    }
}

#[test]
fn fiber_overflow_names_the_coroutine_and_aborts() {
    let out = child("fiber-overflow", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), None, "killed by a signal: {stderr}");
    assert!(
        stderr.contains("coroutine 7 'deep' overflowed its stack of 64 KiB"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CORUN_STACK_SIZE") && stderr.contains("grow"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

#[test]
fn recursion_of_256_mib_completes_through_grow() {
    let out = child("grow", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("thread: 1") && stdout.contains("fiber: 1"),
        "{stdout}"
    );
}

#[test]
fn mprotect_fallback_stops_at_max_map_count_with_a_clear_error() {
    let out = child("mprotect", &[("CORUN_STACK_GUARD", "mprotect")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("still works"), "{stdout}");
    let held: usize = stdout
        .split("held ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("mprotect mode held {held} stacks before the limit");
    assert!(held > 10_000, "{held}");
}

#[test]
fn mprotect_guards_catch_overflow_too() {
    let out = child("mprotect-overflow", &[("CORUN_STACK_GUARD", "mprotect")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("coroutine 9 'prot' overflowed its stack of 32 KiB"),
        "{stderr}"
    );
}
