//! Stack overflow detection for coroutine stacks.
//!
//! A SIGSEGV/SIGBUS handler, installed once and run on an alternate signal
//! stack, checks whether the faulting address lies in the guard of one of our
//! slots. If so it prints one line naming the owner (read from the slot's
//! header) and aborts. Any other fault is passed to the handler that was
//! installed before ours, so Rust's own "thread '...' has overflowed its
//! stack" report for thread stacks keeps working.
//!
//! Everything reachable from the handler is async-signal-safe: it reads the
//! lock-free chunk registry and the slot header, formats into a buffer on its
//! own stack and calls `write(2)` and `abort(3)`. It never allocates or locks.

use std::cell::{Cell, UnsafeCell};
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::sync::Once;

use crate::arena;
use crate::label::Label;

/// The handlers that were installed before ours, written once inside
/// `INSTALL` before our handler is installed, read-only afterwards.
struct Previous(UnsafeCell<MaybeUninit<[libc::sigaction; 2]>>);
// SAFETY: written exactly once under `INSTALL` before any reader can exist
// (our handler is installed after the write), then only read.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));
static INSTALL: Once = Once::new();

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Installs the overflow handler for the process (idempotent).
///
/// ```
/// // Idempotent; `Stack::new` calls it. An overflow then prints
/// // "coroutine N ... has overflowed its stack" and aborts, instead of a bare
/// // SIGSEGV.
/// corun_stacks::install_overflow_handler();
/// corun_stacks::install_overflow_handler();
/// ```
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `PREVIOUS` is written here, once, before our handler can
        // run; `sigaction` gets valid pointers to initialised structs.
        unsafe {
            let prev = &mut *PREVIOUS.0.get();
            let prev = prev.write(std::mem::zeroed());
            for (i, &sig) in SIGNALS.iter().enumerate() {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, &mut prev[i]);
            }
        }
    });
    ensure_altstack();
}

/// An alternate signal stack owned by this thread, freed when it exits.
struct AltStack {
    base: Cell<usize>,
    len: Cell<usize>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base == 0 {
            return;
        }
        // SAFETY: we disable the alternate stack before unmapping the memory
        // we mapped for it; no handler runs on it at thread exit.
        unsafe {
            let disable = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&disable, std::ptr::null_mut());
            libc::munmap(base as *mut libc::c_void, self.len.get());
        }
    }
}

thread_local! {
    static ALTSTACK_CHECKED: Cell<bool> = const { Cell::new(false) };
    static ALTSTACK: AltStack = const { AltStack { base: Cell::new(0), len: Cell::new(0) } };
}

/// Makes sure the calling thread has an alternate signal stack, so the
/// handler can run when a coroutine stack is exhausted. Threads spawned by
/// `std` already have one; other threads get one here, once.
///
/// ```
/// // A thread not started by std (e.g. from C) may lack a signal stack; the
/// // runtime calls this on each worker before running coroutines.
/// std::thread::spawn(corun_stacks::ensure_altstack).join().unwrap();
/// ```
#[inline(never)]
pub fn ensure_altstack() {
    if ALTSTACK_CHECKED.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: a zeroed stack_t is a valid value; sigaltstack with a null new
    // stack only queries the current one into it.
    let enabled = unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut current) == 0
            && current.ss_flags & libc::SS_DISABLE == 0
    };
    if enabled {
        return;
    }
    let page = crate::os::page_size();
    let size = (libc::SIGSTKSZ).max(64 * 1024);
    let len = size + page;
    // SAFETY: a fresh anonymous mapping; its lowest page becomes a guard so a
    // runaway handler faults instead of corrupting memory below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        libc::mprotect(p, page, libc::PROT_NONE);
        let stack = libc::stack_t {
            ss_sp: (p as usize + page) as *mut libc::c_void,
            ss_flags: 0,
            ss_size: size,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            libc::munmap(p, len);
            return;
        }
        ALTSTACK.with(|a| {
            a.base.set(p as usize);
            a.len.set(len);
        });
    }
}

/// A fixed buffer that `core::fmt` can write into without allocating.
struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes the one-line report for an overflow of the slot described by `hit`.
fn report(hit: arena::GuardHit) {
    let mut buf = Buf {
        bytes: [0; 512],
        len: 0,
    };
    // SAFETY: the header lies in the top of a slot of a live mapping; a
    // never-written header reads as zeros and fails the magic check.
    let label = unsafe { Label::read(hit.slot_top) };
    let _ = match &label {
        Some(l) if l.id != 0 => {
            let _ = write!(buf, "corun: coroutine {}", l.id);
            if !l.name().is_empty() {
                let _ = write!(buf, " '{}'", l.name());
            }
            write!(
                buf,
                " overflowed its stack of {} KiB",
                hit.stack_size / 1024
            )
        }
        _ => write!(
            buf,
            "corun: a corun stack of {} KiB overflowed",
            hit.stack_size / 1024
        ),
    };
    if label.is_some_and(|l| l.segment) {
        let _ = write!(buf, " (in a grow segment)");
    }
    let _ = writeln!(
        buf,
        "; raise the size with corun::Builder::stack_size or CORUN_STACK_SIZE, or run deep \
         recursion under corun::stacks::grow"
    );
    // SAFETY: writing initialised bytes of our own buffer to stderr.
    unsafe {
        libc::write(2, buf.bytes.as_ptr().cast(), buf.len);
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(hit) = arena::find_guard(addr) {
        report(hit);
        // SAFETY: abort is async-signal-safe and never returns.
        unsafe { libc::abort() };
    }
    chain(sig, info, ctx);
}

/// Hands a fault that is not ours to the handler installed before us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let index = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: `PREVIOUS` was fully written before our handler was installed.
    let prev = unsafe { (*PREVIOUS.0.get()).assume_init_ref()[index] };
    let action = prev.sa_sigaction;
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the kernel terminates the process with the signal.
        // SAFETY: installing the default disposition with a valid struct.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous owner registered this as an SA_SIGINFO handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous owner registered this as a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
        f(sig);
    }
}
