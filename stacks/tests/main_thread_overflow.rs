//! Overflow on the main thread still gets Rust's own report after corun's
//! handler is installed. `harness = false`: the recursion runs on the real
//! main thread, in a child process.

use std::process::Command;

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    if n == 0 {
        0
    } else {
        recurse(n - 1).wrapping_add(pad[3])
    }
}

fn main() {
    if std::env::var_os("CORUN_MAIN_OVERFLOW_CHILD").is_some() {
        corun_stacks::install_overflow_handler();
        // A coroutine stack exists too, so the handler has something to
        // check the fault against.
        let _s = corun_stacks::Stack::new(64 * 1024).unwrap();
        println!("{}", recurse(u64::MAX));
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env("CORUN_MAIN_OVERFLOW_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("has overflowed its stack"),
        "Rust's message missing: {stderr}"
    );
    assert!(
        !stderr.contains("coroutine"),
        "main thread misreported as a coroutine: {stderr}"
    );
    println!("main_thread_overflow: ok");
}
