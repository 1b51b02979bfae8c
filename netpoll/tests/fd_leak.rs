//! No descriptor outlives its socket: after connections of every kind open
//! and close (accepted, refused, timed out, reset, cloned, registered with
//! the poller or not), `/proc/self/fd` is back to its count. Alone in its
//! binary so no other test opens descriptors meanwhile.

use std::io::{Read, Write};
use std::time::Duration;

use corun_netpoll::{TcpListener, TcpStream, UdpSocket, UnixStream};
use corun_runtime::{Runtime, go};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn churn() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = go!(move || {
        for _ in 0..200 {
            let (mut s, _) = listener.accept().unwrap();
            let c = s.try_clone().unwrap();
            go!(move || {
                let mut buf = [0u8; 16];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                drop(c);
            });
        }
    });
    let clients: Vec<_> = (0..200)
        .map(|i| {
            go!(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                if i % 3 == 0 {
                    return; // connect and leave
                }
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"ping").unwrap();
                let mut back = [0u8; 4];
                s.read_exact(&mut back).unwrap();
                assert_eq!(&back, b"ping");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
    // A refused connect and a timed-out read.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(TcpStream::connect(closed).is_err());
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert!(u.recv(&mut [0; 4]).is_err());
    let (a, b) = UnixStream::pair().unwrap();
    drop((a, b));
}

#[test]
fn descriptors_return_to_baseline() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    // Warm up: the runtime, the poller and its eventfd exist from here on.
    rt.block_on(churn);
    let before = open_fds();
    for _ in 0..3 {
        rt.block_on(churn);
    }
    // Server-side coroutines finish once their peers are gone.
    let start = std::time::Instant::now();
    while open_fds() != before && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
}
