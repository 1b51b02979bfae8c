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

/// Runs an upstream test's body in a coroutine on corun's global runtime
/// (see `build.rs`), passing its panic on to the test's thread, so
/// `#[should_panic]` tests see their own message.
pub fn in_coroutine(body: impl FnOnce() + Send + 'static) {
    if let Err(panic) = corun_runtime::spawn(body).join() {
        std::panic::resume_unwind(panic);
    }
}
