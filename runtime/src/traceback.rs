//! `CORUN_TRACEBACK=1`: on SIGQUIT (Ctrl-\), print every coroutine of
//! every runtime and exit with status 2, as a Go program does.
//!
//! A signal handler may only do async-signal-safe things, and listing
//! coroutines takes locks and allocates. So the handler writes one byte to
//! a pipe and a watcher thread, blocked on the other end, does the work.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// Write end of the pipe, or -1.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// 1 once the watcher thread runs (deadlock detection counts it as ours).
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn watcher_threads() -> usize {
    WATCHERS.load(Ordering::SeqCst)
}

/// Arms the SIGQUIT dump if `CORUN_TRACEBACK=1`. Idempotent.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("CORUN_TRACEBACK").is_ok_and(|v| v.trim() == "1")
            && let Err(e) = arm()
        {
            eprintln!("corun: CORUN_TRACEBACK=1 ignored: {e}");
        }
    });
}

fn arm() -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    WATCHERS.store(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("corun-traceback".into())
        .spawn(move || watch(read_end));
    if let Err(e) = spawned {
        WATCHERS.store(0, Ordering::SeqCst);
        return Err(e);
    }
    PIPE_WRITE.store(write_end, Ordering::SeqCst);
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler only calls write(2), which is async-signal-safe.
    // SA_ONSTACK: the signal may catch a coroutine a few hundred bytes above
    // its guard, with no room for the kernel's signal frame; runtime threads
    // have an alternate stack (the overflow handler's), and the handler needs
    // little of it.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigquit as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGQUIT, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn on_sigquit(_: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    // SAFETY: errno is thread-local; saving and restoring it keeps the
    // interrupted code's value. write(2) on a pipe is async-signal-safe and
    // reads one byte from a live static.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, b"q".as_ptr().cast(), 1);
        *libc::__errno_location() = errno;
    }
}

fn watch(read_end: i32) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into a live local from our own pipe.
        let n = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return;
    }
    let mut out = String::from("SIGQUIT: quit\n\n");
    for shared in crate::runtime::all() {
        out.push_str(&format!("runtime {:?}:\n", shared.name));
        out.push_str(&shared.sched_line());
        out.push_str("\n\n");
        out.push_str(&crate::introspect::dump_of(shared));
    }
    // Straight to the file descriptor: `eprint!` goes into the output
    // capture a test harness sets, which this thread inherits from the
    // thread that started the runtime, and the dump would be lost with the
    // process.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
    std::process::exit(2);
}
