//! Behaviour that ends or configures a process, checked in a child process:
//! panic messages, stack overflow reports, the thread cap, environment.

use std::process::{Command, Output};
use std::time::Duration;

use corun_runtime::{Builder, Runtime, WaitReason, go};

const CHILD: &str = "CORUN_TEST_CHILD";

fn child(name: &str, env: &[(&str, &str)]) -> Output {
    child_with(name, env, &["--nocapture"])
}

fn child_with(name: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "children", "--test-threads=1"])
        .args(args)
        .env(CHILD, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The entry point children run; a no-op in the parent.
#[test]
fn children() {
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    match which.as_str() {
        "panic" => {
            let h = Builder::new()
                .name("doomed")
                .spawn(|| panic!("kaboom {}", 42))
                .unwrap();
            assert!(h.join().is_err());
            let ok = go!(|| "still running").join().unwrap();
            println!("after panic: {ok}");
        }
        "overflow" => {
            fn recurse(n: u64) -> u64 {
                let buf = std::hint::black_box([n; 64]);
                if n == 0 { 0 } else { recurse(n - 1) + buf[3] }
            }
            let h = Builder::new()
                .name("deep")
                .stack_size(64 * 1024)
                .spawn(|| recurse(1 << 30))
                .unwrap();
            let _ = h.join();
            println!("unreachable");
        }
        "thread-cap" => {
            let rt = Runtime::builder()
                .workers(1)
                .max_threads(2)
                .build()
                .unwrap();
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    rt.spawn(|| {
                        corun_runtime::blocking(|| std::thread::sleep(Duration::from_secs(5)))
                    })
                })
                .collect();
            for h in hs {
                let _ = h.join();
            }
            println!("unreachable");
        }
        "thread-cap-idle-p" => {
            // The only M waits in `blocking()` for a coroutine spawned after
            // sysmon moved its P to the idle list: running it needs a
            // second M, which the cap forbids.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(20));
                println!("hung");
                std::process::exit(3);
            });
            let rt = Runtime::builder()
                .workers(1)
                .max_threads(1)
                .build()
                .unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            let waiter = rt.spawn(move || corun_runtime::blocking(move || rx.recv().unwrap()));
            std::thread::sleep(Duration::from_millis(100));
            let _sender = rt.spawn(move || tx.send(1).unwrap());
            let _ = waiter.join();
            println!("unreachable");
        }
        "cap-equals-workers" => {
            // No coroutine ever blocks: the runtime never needs more Ms
            // than Ps. An M going idle between releasing its P and listing
            // itself must not make the spawner's `wakep` hit the cap.
            for workers in [1, 2] {
                let rt = Runtime::builder()
                    .workers(workers)
                    .max_threads(workers)
                    .build()
                    .unwrap();
                for i in 0..100_000u32 {
                    assert_eq!(rt.spawn(move || i).join().unwrap(), i);
                }
            }
            println!("survived");
        }
        "second-panic-payload-bomb" => {
            // The coroutine panics, then a local's destructor panics too,
            // with a payload whose own destructor panics. The first panic
            // wins and the second payload is dropped: that drop must not
            // unwind out of the coroutine into its worker.
            struct Bomb;
            impl Drop for Bomb {
                fn drop(&mut self) {
                    panic!("a panic payload's destructor panics");
                }
            }
            struct ThrowsBomb;
            impl Drop for ThrowsBomb {
                fn drop(&mut self) {
                    std::panic::panic_any(Bomb);
                }
            }
            corun_runtime::coroutine_local! {
                static THROWS: std::cell::Cell<Option<ThrowsBomb>> = std::cell::Cell::new(None);
            }
            let h = go!(|| {
                THROWS.with(|t| t.set(Some(ThrowsBomb)));
                panic!("first");
            });
            let err = h.join().unwrap_err();
            assert_eq!(err.downcast_ref::<&str>(), Some(&"first"));
            println!("survived: {}", go!(|| "runtime still up").join().unwrap());
        }
        "env" => {
            let s = corun_runtime::stats();
            println!("ps={}", s.ps);
            let h = go!(|| corun_stacks::remaining_stack().unwrap());
            println!("stack-left={}", h.join().unwrap());
        }
        "sigquit-under-capture" => {
            // Built from the test's thread, whose output the harness
            // captures: the runtime's threads inherit that capture.
            let rt = Runtime::builder().workers(1).build().unwrap();
            let sleeper = rt.spawn(|| corun_runtime::sleep(Duration::from_secs(30)));
            // Signal once the sleeper is parked, so the dump must show it
            // waiting (signalled from the coroutine itself, the dump could
            // come before its park and show it running).
            let id = sleeper.id();
            loop {
                let live = rt.spawn(corun_runtime::coroutines).join().unwrap();
                if live
                    .iter()
                    .any(|c| c.id == id && c.wait_reason == WaitReason::Sleep)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // SAFETY: sending a signal to our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
            let _ = sleeper.join();
            println!("unreachable");
        }
        other => panic!("unknown child {other}"),
    }
}

/// A test that hangs is where the SIGQUIT dump is wanted most, and there
/// the harness captures output, which threads started from the test
/// inherit: the dump must reach the real stderr, with the scheduler line.
#[test]
fn sigquit_dump_reaches_stderr_under_a_test_harness() {
    let out = child_with("sigquit-under-capture", &[("CORUN_TRACEBACK", "1")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{:?}; stderr: {err}",
        out.status
    );
    assert!(err.contains("SIGQUIT: quit"), "{err}");
    assert!(err.contains("SCHED: idleprocs="), "{err}");
    assert!(err.contains("[sleep]"), "{err}");
}

#[test]
fn panic_message_names_the_coroutine_and_runtime_survives() {
    let out = child("panic", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("'doomed' panicked at") && stderr.contains("kaboom 42"),
        "{stderr}"
    );
    assert!(stderr.contains("coroutine "), "{stderr}");
    assert!(stdout.contains("after panic: still running"), "{stdout}");
}

#[test]
fn coroutine_overflow_is_reported_and_aborts() {
    let out = child("overflow", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'deep' overflowed its stack of 64 KiB"),
        "{stderr}"
    );
    assert!(stderr.contains("stack_size"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

#[test]
fn thread_cap_met_by_work_for_an_idle_p_is_a_clear_fatal_error() {
    let out = child("thread-cap-idle-p", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs more than 1 OS threads"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

#[test]
fn a_cap_equal_to_the_workers_is_enough_without_blocking() {
    let out = child("cap-equals-workers", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn a_second_panic_whose_payload_panics_on_drop_stays_in_its_coroutine() {
    let out = child("second-panic-payload-bomb", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("survived: runtime still up"), "{stdout}");
}

#[test]
fn thread_cap_is_a_clear_fatal_error() {
    let out = child("thread-cap", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs more than 2 OS threads"), "{stderr}");
    assert!(stderr.contains("max_threads"), "{stderr}");
}

#[test]
fn environment_configures_the_global_runtime() {
    let out = child("env", &[("CORUN_WORKERS", "3"), ("CORUN_STACK_SIZE", "1M")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ps=3"), "{stdout}");
    let left: usize = stdout
        .split("stack-left=")
        .nth(1)
        .unwrap()
        .trim()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left > 900 * 1024, "{left}");

    let out = child("env", &[("CORUN_WORKERS", "lots")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ignoring CORUN_WORKERS=\"lots\""),
        "{stderr}"
    );
}
