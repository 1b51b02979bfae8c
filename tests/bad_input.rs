//! Nonsense sizes, durations and descriptors get a clear error (or a
//! documented, harmless meaning), never a hang, a crash or a wrap-around.

use std::time::{Duration, Instant};

use corun::{Builder, Runtime};

#[test]
fn runtime_settings_are_checked() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert!(e.to_string().contains("0 workers requested"), "{e}");
    let e = Runtime::builder().workers(1 << 20).build().unwrap_err();
    assert!(e.to_string().contains("workers requested"), "{e}");
    let e = Runtime::builder()
        .workers(4)
        .max_threads(2)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_threads"), "{e}");
    let e = Runtime::builder()
        .stack_size(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn stack_sizes_are_checked_at_spawn() {
    let e = Builder::new()
        .stack_size(usize::MAX)
        .spawn(|| ())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("stack"), "{e}");
    let e = Builder::new().stack_size(1).spawn(|| ()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn huge_durations_mean_forever_not_overflow() {
    corun::run(|| {
        // Timeouts that overflow Instant are "no deadline", not a panic.
        let (_s, r) = corun::chan::bounded::<()>(1);
        let never = corun::chan::after(Duration::MAX);
        assert!(never.try_recv().is_err());
        let (ctx, cancel) = corun::context::Context::background().with_timeout(Duration::MAX);
        assert!(ctx.err().is_none());
        cancel.cancel();
        assert!(ctx.err().is_some());
        // A short timeout still works next to them.
        let start = Instant::now();
        assert!(r.recv_timeout(Duration::from_millis(5)).is_err());
        assert!(start.elapsed() >= Duration::from_millis(5));
    });
}

#[test]
fn zero_timeouts_on_sockets_are_refused_like_std() {
    corun::run(|| {
        let l = corun::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = corun::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let e = s.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let e = corun::net::TcpStream::connect_timeout(&l.local_addr().unwrap(), Duration::ZERO)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn bad_addresses_and_descriptors_are_errors() {
    corun::run(|| {
        let e = corun::net::TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        assert!(!e.to_string().is_empty());
        let e = corun::net::TcpListener::bind("256.0.0.1:0").unwrap_err();
        assert!(!e.to_string().is_empty());
        // A regular file is not pollable, but it never blocks either: reads
        // go straight through.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let mut p = corun::net::PollFd::new(f).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut p, &mut s).unwrap();
        assert!(s.contains("VmRSS"));
    });
}

#[test]
fn negative_waitgroup_counter_panics_with_gos_message() {
    let wg = corun::sync::WaitGroup::new();
    let e = std::panic::catch_unwind(|| wg.done()).unwrap_err();
    let msg = e
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| e.downcast_ref::<&str>().copied())
        .unwrap();
    assert!(msg.contains("negative WaitGroup counter"), "{msg}");
}

#[test]
fn sync_types_are_unwind_safe_like_std() {
    fn check<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    check::<corun::sync::Mutex<u32>>();
    check::<corun::sync::RwLock<u32>>();
    check::<corun::sync::Condvar>();
    check::<corun::sync::Barrier>();
    check::<corun::sync::Once>();
    check::<corun::sync::OnceLock<u32>>();
    check::<corun::sync::Semaphore>();
    check::<corun::sync::WaitGroup>();
}
