//! Deadlock detection and the SIGQUIT dump, each in a child process of its
//! own (detection needs a process with no foreign threads, which the test
//! harness would be). `harness = false`: `main` is the parent, and the
//! child it re-executes runs one scenario on its main thread.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use corun_runtime::{Builder, Runtime, WaitReason, park, run, sleep, spawn, unparker};

const CHILD: &str = "CORUN_DEADLOCK_CHILD";

fn main() {
    if let Ok(which) = std::env::var(CHILD) {
        child(&which);
        return;
    }
    let tests: [(&str, fn()); 8] = [
        ("all_asleep_is_reported_with_a_dump", all_asleep_is_reported),
        ("sleepers_are_not_a_deadlock", sleepers_are_not_a_deadlock),
        (
            "an_endless_sleep_is_not_a_deadlock",
            an_endless_sleep_is_not_a_deadlock,
        ),
        ("a_foreign_thread_may_still_wake", foreign_thread_may_wake),
        ("detection_can_be_turned_off", detection_can_be_turned_off),
        (
            "finished_programs_exit_normally",
            finished_programs_exit_normally,
        ),
        (
            "sigquit_prints_every_coroutine",
            sigquit_prints_every_coroutine,
        ),
        (
            "sigquit_on_a_nearly_full_stack_still_dumps",
            sigquit_on_a_nearly_full_stack_still_dumps,
        ),
    ];
    for (name, test) in tests {
        print!("test {name} ... ");
        test();
        println!("ok");
    }
}

fn child(which: &str) {
    match which {
        "deadlock" => {
            run(|| {
                let h = Builder::new()
                    .name("stuck")
                    .spawn(|| {
                        loop {
                            park(WaitReason::ChanReceive);
                        }
                    })
                    .unwrap();
                h.join().unwrap();
            });
            println!("unreachable: joined a coroutine that never ends");
        }
        "sleepers" => {
            run(|| {
                let hs: Vec<_> = (0..10)
                    .map(|_| spawn(|| sleep(Duration::from_millis(400))))
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
            });
            println!("done");
        }
        "endless" => {
            run(|| {
                spawn(|| sleep(Duration::MAX)).join().unwrap();
            });
            println!("unreachable: an endless sleep ended");
        }
        "foreign" => {
            run(|| {
                let me = unparker();
                let woke = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = woke.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(500));
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    me.unpark();
                });
                while !woke.load(std::sync::atomic::Ordering::SeqCst) {
                    park(WaitReason::ChanReceive);
                }
            });
            println!("done");
        }
        "off" => {
            let rt = Runtime::builder()
                .deadlock_detection(false)
                .build()
                .unwrap();
            rt.block_on(|| {
                loop {
                    park(WaitReason::ChanReceive);
                }
            });
        }
        "finished" => {
            let n = run(|| {
                (0..100)
                    .map(|i| spawn(move || i))
                    .map(|h| h.join().unwrap())
                    .sum::<i32>()
            });
            println!("sum {n}");
        }
        "sigquit" => {
            run(|| {
                let _parked = Builder::new()
                    .name("waiting-for-godot")
                    .spawn(|| {
                        loop {
                            park(WaitReason::ChanReceive);
                        }
                    })
                    .unwrap();
                // Signal from another coroutine, so `main` is surely
                // parked in its sleep when the dump is taken.
                let _signaller = Builder::new()
                    .spawn(|| {
                        sleep(Duration::from_millis(50));
                        // SAFETY: sending a signal to our own process.
                        unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
                    })
                    .unwrap();
                sleep(Duration::from_secs(30));
            });
            println!("unreachable: SIGQUIT did not end the process");
        }
        "sigquit_near_guard" => {
            run(|| {
                let h = Builder::new()
                    .name("deep")
                    .stack_size(64 * 1024)
                    .spawn(|| {
                        let entry = 0u8;
                        let entry = std::hint::black_box(&entry) as *const u8 as usize;
                        // The slot's top is the page boundary just above the
                        // entry frame, its usable bytes the requested size.
                        let bottom = entry.next_multiple_of(4096) - 64 * 1024;
                        descend_then_sigquit(bottom);
                        // The dump happens on the watcher thread: wait
                        // for it.
                        sleep(Duration::from_secs(30));
                    })
                    .unwrap();
                let _ = h.join();
            });
            println!("unreachable: SIGQUIT did not end the process");
        }
        other => panic!("unknown child {other}"),
    }
}

/// Recurses until under 512 bytes of stack are left above the guard, then
/// sends this thread SIGQUIT: too little room for the kernel's signal frame
/// (over 1 KiB with the FPU state), so only an alternate stack can run the
/// handler.
#[inline(never)]
fn descend_then_sigquit(bottom: usize) {
    let frame = [0u8; 256];
    let here = std::hint::black_box(&frame) as *const u8 as usize;
    if here - bottom > 512 + 256 {
        descend_then_sigquit(bottom);
    } else {
        // SAFETY: signals our own thread; the raw system call keeps the
        // frames below this one small.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGQUIT,
            );
        }
    }
    std::hint::black_box(&frame);
}

fn spawn_child(which: &str, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD, which)
        .env_remove("CORUN_DEADLOCK_DETECTION")
        .env_remove("CORUN_TRACEBACK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Runs a child to completion, killing it if it outlives `limit`.
fn run_child(which: &str, env: &[(&str, &str)], limit: Duration) -> (Output, bool) {
    let mut c = spawn_child(which, env);
    let start = Instant::now();
    let mut killed = false;
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            c.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (c.wait_with_output().unwrap(), killed)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn all_asleep_is_reported() {
    let (out, killed) = run_child("deadlock", &[], Duration::from_secs(30));
    let err = text(&out.stderr);
    assert!(!killed, "deadlock not detected; stderr: {err}");
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.contains("fatal error: all coroutines are asleep - deadlock!"),
        "{err}"
    );
    assert!(err.contains("\"stuck\" [chan receive]"), "{err}");
    assert!(err.contains("\"main\" [join]"), "{err}");
    assert!(!text(&out.stdout).contains("unreachable"));
}

fn sleepers_are_not_a_deadlock() {
    let (out, killed) = run_child("sleepers", &[], Duration::from_secs(30));
    assert!(!killed);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("done"));
}

/// Runs a child that must stay silent: detection takes ~100-200 ms, so a
/// second and a half without a report shows it did not fire. The child is
/// then killed.
fn assert_not_reported(which: &str) {
    let (out, killed) = run_child(which, &[], Duration::from_millis(1500));
    assert!(
        killed,
        "{which}: child exited: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("deadlock"));
}

fn an_endless_sleep_is_not_a_deadlock() {
    // Go arms a timer even for a sleep past its clock's end, so checkdead
    // stays silent; so must we.
    assert_not_reported("endless");
}

fn foreign_thread_may_wake() {
    let (out, killed) = run_child("foreign", &[], Duration::from_secs(30));
    assert!(!killed);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("done"));
}

fn detection_can_be_turned_off() {
    assert_not_reported("off");
    // Every usual spelling of "off" turns it off (a value it cannot read
    // is reported, not silently taken for "on").
    for off in ["0", "false", "off", "no", " FALSE "] {
        let (out, killed) = run_child(
            "deadlock",
            &[("CORUN_DEADLOCK_DETECTION", off)],
            Duration::from_millis(1500),
        );
        assert!(
            killed,
            "CORUN_DEADLOCK_DETECTION={off:?}: child exited: {:?} {}",
            out.status,
            text(&out.stderr)
        );
    }
    let (out, _) = run_child(
        "finished",
        &[("CORUN_DEADLOCK_DETECTION", "nope")],
        Duration::from_secs(30),
    );
    assert!(
        text(&out.stderr).contains("ignoring CORUN_DEADLOCK_DETECTION=\"nope\""),
        "{}",
        text(&out.stderr)
    );
}

fn finished_programs_exit_normally() {
    let (out, killed) = run_child("finished", &[], Duration::from_secs(30));
    assert!(!killed);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sum 4950"));
}

/// Runs a child that gets SIGQUIT with `CORUN_TRACEBACK=1`; checks that it
/// printed the dump and exited with status 2, and returns the dump.
fn sigquit_dump(which: &str) -> String {
    let (out, killed) = run_child(which, &[("CORUN_TRACEBACK", "1")], Duration::from_secs(20));
    let err = text(&out.stderr);
    assert!(!killed, "SIGQUIT did not end the child; stderr: {err}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{:?}; stderr: {err}",
        out.status
    );
    assert!(err.starts_with("SIGQUIT: quit"), "{err}");
    err
}

fn sigquit_prints_every_coroutine() {
    let err = sigquit_dump("sigquit");
    assert!(
        err.contains("\"waiting-for-godot\" [chan receive]"),
        "{err}"
    );
    assert!(err.contains("\"main\" [sleep]"), "{err}");
}

/// A coroutine close to its guard gets the signal: the handler runs on the
/// thread's alternate stack, not into the guard.
fn sigquit_on_a_nearly_full_stack_still_dumps() {
    let err = sigquit_dump("sigquit_near_guard");
    // Listed as running or already asleep: the dump races its way to sleep.
    assert!(err.contains("\"deep\" ["), "{err}");
}
