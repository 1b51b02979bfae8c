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
