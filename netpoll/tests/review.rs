//! Review findings: each test failed before its fix.

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use corun_netpoll::{TcpListener, TcpStream, UnixStream};
use corun_runtime::Runtime;

fn rt() -> &'static Runtime {
    static RT: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| Runtime::builder().workers(2).build().unwrap())
}

/// Writes until a write times out: the send buffer is full and the write
/// direction is marked drained at its current count.
fn fill(mut s: &TcpStream) {
    let chunk = vec![7u8; 1 << 16];
    let start = Instant::now();
    loop {
        match s.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::TimedOut => return,
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never filled");
    }
}

/// std (and the kernel) answer a zero-length write at once with `Ok(0)`,
/// full send buffer or not: nothing has to wait for room.
#[test]
fn zero_length_write_on_a_full_socket_returns_at_once() {
    // std's behaviour, as the reference.
    {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 1 << 16];
        while s.write(&chunk).is_ok() {}
        s.set_nonblocking(false).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert_eq!(s.write(&[]).unwrap(), 0, "std");
    }
    rt().block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        fill(&s);
        let t = Instant::now();
        assert_eq!((&s).write(&[]).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_millis(100));

        let (a, _b) = UnixStream::pair().unwrap();
        a.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let chunk = vec![7u8; 1 << 16];
        loop {
            match (&a).write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => break,
                Err(e) => panic!("{e}"),
            }
        }
        let t = Instant::now();
        assert_eq!((&a).write(&[]).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_millis(100));
    });
}
