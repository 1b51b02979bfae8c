//! Under a limit on address space (`ulimit -v`, `RLIMIT_AS`), stacks are
//! handed out until the space is really used up, then refused with a clear
//! error. Each case runs in a child process, since the limit is per process.

use std::process::{Command, Output};

use corun_stacks::{GUARD_SIZE, Stack};

const CHILD: &str = "CORUN_STACKS_AS_CHILD";

/// Address space left to the stacks in the child.
const HEADROOM: usize = 512 << 20;

fn child(name: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "children", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap()
}

/// Virtual size of this process, from `/proc/self/status`.
fn vm_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize in /proc/self/status");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Limits the address space to what is mapped now plus `HEADROOM`.
fn limit_address_space() {
    let limit = (vm_size() + HEADROOM) as libc::rlim_t;
    let r = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
}

/// The entry point of children; a no-op in the parent.
#[test]
fn children() {
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    match which.as_str() {
        "fill" => {
            let mut held = Vec::with_capacity(4096);
            limit_address_space();
            let err = loop {
                match Stack::new(256 * 1024) {
                    Ok(s) => held.push(s),
                    Err(e) => break e,
                }
                assert!(held.len() < 4096, "the address space limit was never met");
            };
            println!("held {} then: {err}", held.len());
        }
        other => panic!("unknown child {other}"),
    }
}

#[test]
fn stacks_fill_the_address_space_left_before_an_error() {
    let out = child("fill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("cannot reserve") && stdout.contains("address space for stacks"),
        "not the clear error: {stdout}"
    );
    let held: usize = stdout
        .split("held ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    // Arena chunks double in size: refusing once the next chunk does not
    // fit left most of the headroom unused.
    let slot = 256 * 1024 + GUARD_SIZE;
    eprintln!(
        "held {held} stacks: {} of {} MiB",
        (held * slot) >> 20,
        HEADROOM >> 20
    );
    assert!(
        held * slot >= HEADROOM * 3 / 4,
        "refused after {held} stacks ({} MiB) of {} MiB of address space",
        (held * slot) >> 20,
        HEADROOM >> 20
    );
}
