//! Graceful shutdown on SIGINT/SIGTERM: stop accepting, cancel, drain, exit.
//! `cargo run --release --example graceful_shutdown -- --addr 127.0.0.1:7010`,
//! then `printf 'hello\n' | nc 127.0.0.1 7010` and Ctrl-C.
//!
//! A line server: each request line is answered after `--work-ms` of
//! "work". Signals are read from a signalfd wrapped in `PollFd`, so the
//! signal watcher is an ordinary coroutine parked in the poller. On the
//! first signal the watcher cancels the server's `Context`; the accept
//! loop then closes the listener (new connections are refused), idle
//! connections close, a request in progress is finished and answered, and
//! `main` waits for every connection (a `WaitGroup`) before exiting 0. A
//! second signal exits at once with status 130.

#[path = "support/flags.rs"]
mod flags;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corun::context::{CancelFn, Context};
use corun::go;
use corun::net::{PollFd, TcpListener, TcpStream};
use corun::sync::WaitGroup;
use flags::flag;

/// SIGINT and SIGTERM, blocked in this thread (and so in every thread it
/// starts later) and delivered through a signalfd instead.
fn signal_fd() -> std::io::Result<PollFd<OwnedFd>> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is a live sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGINT);
        libc::sigaddset(&mut mask, libc::SIGTERM);
    }
    // SAFETY: changes only this thread's mask, with a valid set.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    // SAFETY: plain system call with a valid mask; the result is checked.
    let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    PollFd::new(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Parks until a signal arrives; returns its number.
fn next_signal(fd: &PollFd<OwnedFd>) -> std::io::Result<u32> {
    fd.read_with(|fd| {
        // SAFETY: signalfd_siginfo is plain data, filled by read(2).
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(info.ssi_signo)
    })
}

fn serve(ctx: Context, conn: TcpStream, work: Duration, answered: Arc<AtomicUsize>) {
    // Poll the context between requests, as Go's http.Server.Shutdown
    // polls idle connections.
    conn.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                corun::sleep(work); // the request runs to the end even if cancelled
                let reply = format!("done: {}", line.trim_end());
                if writeln!(&conn, "{reply}").is_err() {
                    return;
                }
                answered.fetch_add(1, Ordering::Relaxed);
                line.clear();
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            Err(_) => return,
        }
        if ctx.err().is_some() && line.is_empty() {
            return; // idle and shutting down
        }
    }
}

fn main() {
    let addr: String = flag("addr", "127.0.0.1:7010".to_string());
    let work = Duration::from_millis(flag("work-ms", 200));
    let signals = signal_fd().unwrap_or_else(|e| {
        eprintln!("cannot set up signal handling: {e}");
        std::process::exit(1)
    });
    corun::run(move || {
        let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1)
        });
        let local = listener.local_addr().unwrap();
        println!("listening on {local}");
        let (ctx, cancel): (Context, CancelFn) = Context::background().with_cancel();
        go!(move || {
            let first = next_signal(&signals).expect("signalfd read");
            println!("signal {first}: shutting down");
            cancel.cancel();
            // Wake the accept loop so it sees the cancellation.
            drop(TcpStream::connect(local));
            if let Ok(second) = next_signal(&signals) {
                eprintln!("signal {second} again: exiting now");
                std::process::exit(130);
            }
        });
        let connections = WaitGroup::new();
        let answered = Arc::new(AtomicUsize::new(0));
        let mut accepted = 0usize;
        loop {
            let conn = listener.accept();
            if ctx.err().is_some() {
                break;
            }
            let Ok((conn, _)) = conn else { continue };
            accepted += 1;
            let (ctx, answered) = (ctx.clone(), answered.clone());
            connections.go(move || serve(ctx, conn, work, answered));
        }
        drop(listener);
        println!("stopped accepting after {accepted} connection(s); draining");
        connections.wait();
        println!(
            "drained: {} request(s) answered, every connection closed; exiting",
            answered.load(Ordering::Relaxed)
        );
    });
}
