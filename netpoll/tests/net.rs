//! Sockets under load and misbehaving peers, in coroutines and on plain
//! threads. Loopback only; every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corun_netpoll::{
    PollFd, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use corun_runtime::{Runtime, go, spawn};

fn rt() -> &'static Runtime {
    static RT: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| Runtime::builder().workers(2).build().unwrap())
}

/// An echo server on its own coroutine; returns its address.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    rt().spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn message(conn: u32, seq: u32) -> [u8; 64] {
    let mut m = [0u8; 64];
    for (i, b) in m.iter_mut().enumerate() {
        *b = (conn.wrapping_mul(31) ^ seq.wrapping_mul(7) ^ i as u32) as u8;
    }
    m[..4].copy_from_slice(&conn.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    m
}

/// Sends `msgs` messages on one connection and checks every echo.
fn talk(addr: SocketAddr, conn: u32, msgs: u32) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut back = [0u8; 64];
    for seq in 0..msgs {
        let m = message(conn, seq);
        s.write_all(&m).unwrap();
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, m, "connection {conn} message {seq}");
    }
}

#[test]
fn thousand_connections_thousand_messages_each() {
    let addr = echo_server();
    rt().block_on(move || {
        let hs: Vec<_> = (0..1000)
            .map(|c| spawn(move || talk(addr, c, 1000)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn plain_threads_use_the_same_types() {
    let addr = echo_server();
    let hs: Vec<_> = (0..8)
        .map(|c| std::thread::spawn(move || talk(addr, c, 500)))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // Timeouts on a thread, too.
    let idle = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = TcpStream::connect(idle.local_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    let err = (&s).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn half_close_is_seen_as_end_of_stream() {
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = go!(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap(); // until the client's FIN
            s.write_all(&all).unwrap();
            s.write_all(b"|done").unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"half-closed").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "half-closed|done");
        server.join().unwrap();
    });
}

#[test]
fn peer_reset_mid_write_costs_only_its_connection() {
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = go!(move || {
            let mut results = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let chunk = vec![7u8; 1 << 16];
                let mut sent = 0usize;
                let r = loop {
                    match s.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e) => break Err(e),
                    }
                    if sent > 64 << 20 {
                        break Ok(sent);
                    }
                };
                results.push(r.map_err(|e| e.kind()));
            }
            results
        });
        // The first peer reads a little, then resets (SO_LINGER 0 + close).
        let mut c = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 1024];
        c.read_exact(&mut buf).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&c);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt with a valid linger struct on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(c);
        // The second peer drains everything.
        let reader = go!(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut n = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        let results = server.join().unwrap();
        assert!(
            matches!(
                results[0],
                Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
            ),
            "{results:?}"
        );
        assert!(results[1].is_ok(), "{results:?}");
        assert!(reader.join().unwrap() > 64 << 20);
    });
}

#[test]
fn silent_peer_meets_the_read_timeout() {
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _silent = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(100)));
        let start = Instant::now();
        let err = (&s).read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(100), "woke early");
        assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
    });
}

#[test]
fn write_timeout_ends_a_blocked_write() {
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _never_reads = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let chunk = vec![1u8; 1 << 16];
        let start = Instant::now();
        let err = loop {
            if let Err(e) = (&s).write(&chunk) {
                break e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "buffers never filled"
            );
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let in_coroutine = rt().block_on(move || TcpStream::connect(addr).map(|_| ()));
    assert_eq!(
        in_coroutine.unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let on_thread = TcpStream::connect(addr).map(|_| ());
    assert_eq!(on_thread.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let timed = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map(|_| ());
    assert_eq!(timed.unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn accept_keeps_up_with_a_storm_of_connects() {
    const CONNECTS: usize = 5000;
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = go!(move || {
            let mut n = 0;
            while n < CONNECTS {
                let (s, _) = listener.accept().unwrap();
                drop(s);
                n += 1;
            }
            n
        });
        let done = Arc::new(AtomicUsize::new(0));
        let connectors: Vec<_> = (0..50)
            .map(|_| {
                let done = done.clone();
                go!(move || {
                    for _ in 0..CONNECTS / 50 {
                        drop(TcpStream::connect(addr).unwrap());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for c in connectors {
            c.join().unwrap();
        }
        assert_eq!(acceptor.join().unwrap(), CONNECTS);
        assert_eq!(done.load(Ordering::Relaxed), CONNECTS);
    });
}

#[test]
fn one_coroutine_reads_while_another_writes() {
    rt().block_on(|| {
        let addr = echo_server();
        let s = Arc::new(TcpStream::connect(addr).unwrap());
        let total = 4 << 20;
        let writer = {
            let s = s.clone();
            go!(move || {
                let chunk = vec![9u8; 8192];
                let mut sent = 0;
                while sent < total {
                    (&*s).write_all(&chunk).unwrap();
                    sent += chunk.len();
                }
            })
        };
        let reader = {
            let s = s.clone();
            go!(move || {
                let mut got = 0;
                let mut buf = vec![0u8; 8192];
                while got < total {
                    let n = (&*s).read(&mut buf).unwrap();
                    assert!(n > 0 && buf[..n].iter().all(|&b| b == 9));
                    got += n;
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        let clone = s.try_clone().unwrap();
        assert_eq!(clone.peer_addr().unwrap(), addr);
    });
}

#[test]
fn udp_round_trips() {
    for in_coroutine in [true, false] {
        let body = || {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_addr = b.local_addr().unwrap();
            let echo = std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                for _ in 0..100 {
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    b.send_to(&buf[..n], from).unwrap();
                }
            });
            a.connect(b_addr).unwrap();
            a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for i in 0..100u32 {
                a.send(&i.to_le_bytes()).unwrap();
                let mut buf = [0u8; 4];
                assert_eq!(a.recv(&mut buf).unwrap(), 4);
                assert_eq!(u32::from_le_bytes(buf), i);
            }
            echo.join().unwrap();
        };
        if in_coroutine {
            rt().block_on(body);
        } else {
            body();
        }
    }
}

#[test]
fn unix_sockets() {
    rt().block_on(|| {
        let path = std::env::temp_dir().join(format!("corun-net-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = go!(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"unix!").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"unix!");
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();

        let (a, b) = UnixDatagram::pair().unwrap();
        let h = go!(move || {
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        corun_runtime::sleep(Duration::from_millis(5));
        a.send(b"datagram").unwrap();
        assert_eq!(h.join().unwrap(), b"datagram");
    });
}

#[test]
fn pollfd_parks_on_a_pipe_with_its_wait_reason() {
    rt().block_on(|| {
        let (r, w) = std::io::pipe().unwrap();
        let mut r = PollFd::new(r).unwrap();
        let reader = corun_runtime::Builder::new()
            .name("pipe-reader")
            .spawn(move || {
                let mut buf = [0u8; 3];
                r.read_exact(&mut buf).unwrap();
                buf
            })
            .unwrap();
        let start = Instant::now();
        loop {
            let parked = corun_runtime::coroutines().into_iter().any(|c| {
                c.name.as_deref() == Some("pipe-reader")
                    && c.wait_reason == corun_runtime::WaitReason::IoRead
            });
            if parked {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10));
            corun_runtime::sleep(Duration::from_millis(1));
        }
        let mut w = PollFd::new(w).unwrap();
        w.write_all(b"abc").unwrap();
        assert_eq!(&reader.join().unwrap(), b"abc");
    });
}

#[test]
fn io_waiters_are_not_starved_by_busy_processors() {
    // One processor, kept busy by coroutines that yield to each other
    // forever: the run queue is never empty, so only sysmon's stale-poll
    // check can notice the socket.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            rt.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    corun_runtime::yield_now();
                }
            })
        })
        .collect();
    let (a, b) = UnixStream::pair().unwrap();
    let reader = rt.spawn(move || {
        let mut buf = [0u8; 4];
        (&a).read_exact(&mut buf).unwrap();
        buf
    });
    std::thread::sleep(Duration::from_millis(50));
    (&b).write_all(b"ping").unwrap();
    let start = Instant::now();
    while !reader.is_finished() {
        // sysmon polls after 10 ms without a poll; without it this took
        // 17 s here (until a preemption happened to let a poller in).
        assert!(start.elapsed() < Duration::from_secs(5), "reader starved");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(&reader.join().unwrap(), b"ping");
    for s in spinners {
        s.join().unwrap();
    }
}

#[test]
fn nonblocking_reads_in_a_coroutine_never_park() {
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        // A blocking read that parks once marks the socket drained...
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(s.read(&mut [0; 8]).unwrap_err().kind(), ErrorKind::TimedOut);
        // ...yet in non-blocking mode the next read answers at once.
        s.set_nonblocking(true).unwrap();
        let t = Instant::now();
        assert_eq!(
            s.read(&mut [0; 8]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        c.write_all(b"hi").unwrap();
        let mut buf = [0; 8];
        let n = loop {
            match s.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => corun_runtime::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"hi");
    });
}

#[test]
fn the_end_of_a_stream_that_came_with_its_data_is_seen() {
    // Data and FIN land before the first read: the short read must not
    // mark the socket drained, or the end-of-stream read parks forever.
    rt().block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..20 {
            let mut c = TcpStream::connect(addr).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            // Park once (registers the socket), then read short once.
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            assert_eq!(s.read(&mut [0; 8]).unwrap_err().kind(), ErrorKind::TimedOut);
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(b"a").unwrap();
            assert_eq!(s.read(&mut [0; 8]).unwrap(), 1);
            c.write_all(b"tail").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            corun_runtime::sleep(Duration::from_millis(2));
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"tail");
        }
    });
}

/// Two coroutines make the first wait on one shared socket at the same
/// time: both try to register the descriptor.
#[test]
fn concurrent_first_waits_on_a_shared_socket() {
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let trials = 3000;
    for _ in 0..trials {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let ready = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (sock, ready, errors) = (sock.clone(), ready.clone(), errors.clone());
                rt().spawn(move || {
                    ready.fetch_add(1, Ordering::SeqCst);
                    let t = Instant::now();
                    while ready.load(Ordering::SeqCst) < 2 && t.elapsed() < Duration::from_millis(2)
                    {
                        std::hint::spin_loop();
                    }
                    let mut buf = [0u8; 16];
                    match sock.recv_from(&mut buf) {
                        Err(e) if e.kind() == ErrorKind::TimedOut => {}
                        other => errors.lock().unwrap().push(format!("{other:?}")),
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {} trials: {:?}",
        errors.len(),
        trials,
        &errors[..errors.len().min(3)]
    );
}

/// TCP urgent data makes a read stop short with more data buffered.
#[test]
fn short_read_at_the_urgent_mark_is_not_a_drained_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let c = std::net::TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (&c).write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (&c).write_all(b"abc").unwrap();
        // SAFETY: one byte from a live buffer on an open socket.
        let n = unsafe { libc::send(c.as_raw_fd(), b"d".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(n, 1);
        (&c).write_all(b"efg").unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    let got = rt()
        .spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            // Parks (registers), then reads "x" (a short read).
            let n = s.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"x");
            // Everything else arrives and is polled meanwhile.
            corun_runtime::sleep(Duration::from_millis(500));
            let n = s.read(&mut buf).unwrap();
            let first = buf[..n].to_vec();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let second = s.read(&mut buf).map(|n| buf[..n].to_vec());
            (first, second)
        })
        .join()
        .unwrap();
    client.join().unwrap();
    assert_eq!(got.0, b"abc");
    assert_eq!(
        got.1.unwrap(),
        b"efg",
        "data buffered after the urgent mark"
    );
}

/// `PollFd::get_mut` lets safe code replace the descriptor; the old
/// registration's number is later deleted from epoll, whoever owns it then.
#[test]
fn replacing_a_pollfds_descriptor_unregisters_a_stranger() {
    let r = rt()
        .spawn(|| {
            let (r1, _w1) = std::io::pipe().unwrap();
            let mut p1 = PollFd::new(r1).unwrap();
            p1.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            // First wait: registers r1's descriptor number.
            let e = p1.read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            let old_fd = p1.as_raw_fd();
            let (r_new, _w_new) = std::io::pipe().unwrap();
            drop(std::mem::replace(p1.get_mut(), r_new)); // safe code; closes old_fd
            // A stranger gets the old number and registers it.
            let (r2, mut w2) = std::io::pipe().unwrap();
            assert_eq!(r2.as_raw_fd(), old_fd, "descriptor number reused");
            let p2 = Arc::new(PollFd::new(r2).unwrap());
            p2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let reader = {
                let p2 = p2.clone();
                corun_runtime::spawn(move || {
                    let mut b = [0u8; 1];
                    p2.read_with(|mut f| f.read(&mut b)).map(|_| b[0])
                })
            };
            corun_runtime::sleep(Duration::from_millis(100)); // reader parked
            drop(p1); // deregisters by the old number: p2's registration
            corun_runtime::sleep(Duration::from_millis(50));
            w2.write_all(b"!").unwrap();
            reader.join().unwrap()
        })
        .join()
        .unwrap();
    assert_eq!(r.unwrap(), b'!');
}

/// `into_std` on one of two clones switches the shared file description
/// back to blocking mode: the other clone's read then blocks the thread
/// and ignores its read timeout.
#[test]
fn into_std_of_a_clone_breaks_the_other_clones_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _peer = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(4));
        drop(s);
    });
    let a = TcpStream::connect(addr).unwrap();
    let b = a.try_clone().unwrap();
    let _std_a = a.into_std().unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t = Instant::now();
    let r = (&b).read(&mut [0u8; 8]);
    let took = t.elapsed();
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::TimedOut) && took < Duration::from_secs(1),
        "{r:?} after {took:?}"
    );
}

/// A corun UDP socket whose `try_clone` twin went back to std, which
/// cleared `O_NONBLOCK` on the open file they share.
fn twin_cleared_udp(addr: &str) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    let clone = s.try_clone()?;
    drop(s.into_std()?);
    // SAFETY: `F_GETFL` only reads the open file's status flags.
    let flags = unsafe { libc::fcntl(clone.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0, "the twin cleared O_NONBLOCK");
    Ok(clone)
}

/// The datagram side of the test above: on a clone whose twin went back to
/// std, `recv_from` and `peek_from` still honour the read timeout instead
/// of blocking the worker, and `send_to` / `recv_from` still carry the
/// right addresses, over IPv4, IPv6 and Unix sockets. The runtime runs on
/// a helper thread, so a transfer that blocks fails the test instead of
/// hanging it.
#[test]
fn into_std_of_a_clone_leaves_the_other_clones_datagrams_nonblocking() {
    let (done, finished) = std::sync::mpsc::channel();
    let helper = std::thread::spawn(move || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            for addr in ["127.0.0.1:0", "[::1]:0"] {
                let b = match twin_cleared_udp(addr) {
                    Ok(b) => b,
                    Err(e) if addr.starts_with('[') => {
                        println!("skipping IPv6: binding {addr} failed: {e}");
                        continue;
                    }
                    Err(e) => panic!("binding {addr}: {e}"),
                };
                b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let mut buf = [0u8; 16];
                // Nothing arrives: a blocking call would never return (the
                // helper thread's deadline above catches that).
                let times_out = |what: &str, r: std::io::Result<(usize, SocketAddr)>| {
                    assert!(
                        matches!(&r, Err(e) if e.kind() == ErrorKind::TimedOut),
                        "{what} on {addr}: {r:?}"
                    );
                };
                times_out("recv_from", b.recv_from(&mut buf));
                times_out("peek_from", b.peek_from(&mut buf));

                let a = twin_cleared_udp(addr).unwrap();
                b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                assert_eq!(a.send_to(b"twin", b.local_addr().unwrap()).unwrap(), 4);
                let sender = a.local_addr().unwrap();
                assert_eq!(b.peek_from(&mut buf).unwrap(), (4, sender));
                assert_eq!(b.recv_from(&mut buf).unwrap(), (4, sender));
                assert_eq!(&buf[..4], b"twin");
            }

            let pid = std::process::id();
            let path = |side: &str| std::env::temp_dir().join(format!("corun-twin-{side}-{pid}"));
            let (path_a, path_b) = (path("a"), path("b"));
            let _ = (std::fs::remove_file(&path_a), std::fs::remove_file(&path_b));
            let twin_cleared_unix = |at: &std::path::Path| {
                let s = UnixDatagram::bind(at).unwrap();
                let clone = s.try_clone().unwrap();
                drop(s.into_std().unwrap());
                // SAFETY: `F_GETFL` only reads the open file's status flags.
                let flags = unsafe { libc::fcntl(clone.as_raw_fd(), libc::F_GETFL) };
                assert_eq!(flags & libc::O_NONBLOCK, 0, "the twin cleared O_NONBLOCK");
                clone
            };
            let b = twin_cleared_unix(&path_b);
            b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 16];
            let r = b.recv_from(&mut buf);
            assert!(
                matches!(&r, Err(e) if e.kind() == ErrorKind::TimedOut),
                "Unix recv_from: {r:?}"
            );
            let a = twin_cleared_unix(&path_a);
            b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(a.send_to(b"unix twin", &path_b).unwrap(), 9);
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((n, from.as_pathname()), (9, Some(path_a.as_path())));
            std::fs::remove_file(&path_a).unwrap();
            std::fs::remove_file(&path_b).unwrap();
        });
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => helper.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(helper.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("a UDP transfer on a twin-cleared socket blocked its worker for 10 s")
        }
    }
}

/// A Unix stream read stops after a message that carried descriptors,
/// with more data buffered behind it: that short read is no drain.
#[test]
fn short_read_after_passed_descriptors_is_not_a_drained_buffer() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let got = rt().spawn(move || {
        let mut s = UnixStream::from_std(ours).unwrap();
        let mut buf = [0u8; 64];
        // Parks (registers), then reads "x" (a short read).
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"x");
        corun_runtime::sleep(Duration::from_millis(300));
        let n = s.read(&mut buf).unwrap();
        let first = buf[..n].to_vec();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let second = s.read(&mut buf).map(|n| buf[..n].to_vec());
        (first, second)
    });
    std::thread::sleep(Duration::from_millis(100));
    (&theirs).write_all(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    send_with_descriptor(&theirs, b"abc");
    (&theirs).write_all(b"efg").unwrap();
    let (first, second) = got.join().unwrap();
    assert_eq!(first, b"abc");
    assert_eq!(
        second.unwrap(),
        b"efg",
        "data buffered after the descriptors"
    );
}

/// Sends `data` on `s` with one descriptor (`s`'s own) attached.
fn send_with_descriptor(s: &std::os::unix::net::UnixStream, data: &[u8]) {
    let fd = s.as_raw_fd();
    // SAFETY: `CMSG_SPACE` is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid `msghdr`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` describes `control`, which has room for one header and
    // one descriptor; `data` and `control` outlive the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
        libc::sendmsg(fd, &msg, 0)
    };
    assert_eq!(sent, data.len() as isize);
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Fills the queue of a Unix datagram socket at `path` from an unconnected
/// sender; returns the sender and how many datagrams went in.
fn full_unix_receiver(path: &std::path::Path) -> (UnixDatagram, UnixDatagram, usize) {
    let _ = std::fs::remove_file(path);
    let receiver = UnixDatagram::bind(path).unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    sender.set_nonblocking(true).unwrap();
    let mut queued = 0;
    loop {
        match sender.send_to(b"filler", path) {
            Ok(_) => queued += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the receiver: {e}"),
        }
    }
    sender.set_nonblocking(false).unwrap();
    assert!(queued > 0);
    (receiver, sender, queued)
}

/// Sends to the full receiver from `send` (on a plain thread or a pinned
/// coroutine, so the thread's CPU clock is the sender's alone), drains the
/// receiver 300 ms later, and checks that the sender waited without
/// spinning: the kernel never reports when such a receiver drains, so a
/// readiness wait would return at once, again and again.
fn send_to_a_full_receiver_waits_quietly(in_coroutine: bool) {
    let path = std::env::temp_dir().join(format!(
        "corun-net-full-{}-{in_coroutine}",
        std::process::id()
    ));
    let (receiver, sender, queued) = full_unix_receiver(&path);
    let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let send = {
        let (path, drained) = (path.clone(), drained.clone());
        move || {
            let before = thread_cpu();
            assert_eq!(sender.send_to(b"last", &path).unwrap(), 4);
            assert!(drained.load(Ordering::SeqCst), "sent into a full queue");
            thread_cpu() - before
        }
    };
    let join: Box<dyn FnOnce() -> Duration> = if in_coroutine {
        let h = rt().block_on(|| {
            corun_runtime::Builder::new()
                .pinned(true)
                .spawn(send)
                .unwrap()
        });
        Box::new(move || h.join().unwrap())
    } else {
        let h = std::thread::spawn(send);
        Box::new(move || h.join().unwrap())
    };
    std::thread::sleep(Duration::from_millis(300));
    drained.store(true, Ordering::SeqCst);
    let mut buf = [0u8; 8];
    for _ in 0..queued {
        assert_eq!(receiver.recv(&mut buf).unwrap(), 6);
    }
    let cpu = join();
    let mut buf = [0u8; 8];
    assert_eq!(receiver.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"last");
    // A spinning sender burns the whole 300 ms; one that pauses between
    // tries, a few milliseconds at most.
    assert!(
        cpu < Duration::from_millis(100),
        "the sender spun: {cpu:?} of CPU"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn unix_send_to_a_full_receiver_waits_quietly_on_a_thread() {
    send_to_a_full_receiver_waits_quietly(false);
}

#[test]
fn unix_send_to_a_full_receiver_waits_quietly_in_a_coroutine() {
    send_to_a_full_receiver_waits_quietly(true);
}

#[test]
fn unix_send_to_a_full_receiver_meets_the_write_timeout() {
    let path = std::env::temp_dir().join(format!("corun-net-full-timeout-{}", std::process::id()));
    let (_receiver, sender, _) = full_unix_receiver(&path);
    sender
        .set_write_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let h = rt().block_on(|| {
        go!(move || {
            let start = Instant::now();
            let err = sender.send_to(b"late", &path).unwrap_err();
            std::fs::remove_file(&path).unwrap();
            (err.kind(), start.elapsed())
        })
    });
    let (kind, waited) = h.join().unwrap();
    assert_eq!(kind, ErrorKind::TimedOut);
    assert!(waited >= Duration::from_millis(30), "{waited:?}");
}
