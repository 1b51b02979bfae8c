//! What every runner of an upstream test file adds.

/// Upstream's tests wait forever when an assertion fails on a thread they
/// spawned (the test's own thread then waits for a message that never
/// comes), which would hang CI instead of failing it. `alarm` arms
/// SIGALRM, whose default action ends the process ("signal: 14, SIGALRM"
/// in cargo's report), ten minutes after start: each file takes under 30 s
/// here. It runs from `.init_array`, before `main`.
#[used]
#[link_section = ".init_array"]
static WATCHDOG: extern "C" fn() = {
    extern "C" fn arm() {
        // SAFETY: `alarm` only schedules a signal for this process.
        unsafe { libc::alarm(600) };
    }
    arm
};

/// The watchdog above is armed in every runner, which includes this file:
/// `alarm(0)` reports the seconds left (0 if none was set) and disarms, so
/// the test puts the alarm back at once.
#[test]
fn the_watchdog_is_armed() {
    // SAFETY: `alarm` only reschedules this process's signal.
    let left = unsafe { libc::alarm(0) };
    // SAFETY: as above; re-arms what was read.
    unsafe { libc::alarm(left) };
    assert!(
        (1..=600).contains(&left),
        "SIGALRM due in {left} s, not within the 600 s the watchdog sets"
    );
}

/// Runs an upstream test's body in a coroutine on corun's global runtime
/// (see `build.rs`), passing its panic on to the test's thread, so
/// `#[should_panic]` tests see their own message.
pub fn in_coroutine(body: impl FnOnce() + Send + 'static) {
    if let Err(panic) = corun_runtime::spawn(body).join() {
        std::panic::resume_unwind(panic);
    }
}
