//! Where std's sockets answer at once or share state, ours must too: a
//! zero-length write on a full socket, a datagram receive after a read
//! shutdown, options set on one `try_clone` twin. Each test checks std's
//! behaviour first, as the reference.

use std::io::{ErrorKind, Read, Write};
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
        let t = Instant::now();
        assert_eq!((&s).write_vectored(&[]).unwrap(), 0, "vectored");
        let empty = [std::io::IoSlice::new(&[])];
        assert_eq!((&s).write_vectored(&empty).unwrap(), 0, "vectored");
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

/// A `recv` blocked on a Unix datagram socket ends with `Ok(0)` when the
/// socket is shut down for reading (std's, on a thread), and so does a
/// `recv` made after it. Non-blocking `recv` says `EAGAIN` there instead,
/// so a coroutine that waited for readiness parked for ever.
#[test]
fn unix_datagram_recv_ends_on_shutdown() {
    use corun_netpoll::UnixDatagram;
    use std::net::Shutdown;
    use std::sync::Arc;
    // std's behaviour, as the reference.
    {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let a = Arc::new(a);
        let r = {
            let a = a.clone();
            std::thread::spawn(move || a.recv(&mut [0u8; 16]))
        };
        std::thread::sleep(Duration::from_millis(50));
        a.shutdown(Shutdown::Read).unwrap();
        assert_eq!(r.join().unwrap().unwrap(), 0, "std, blocked");
        assert_eq!(a.recv(&mut [0u8; 16]).unwrap(), 0, "std, after");
    }
    for how in [Shutdown::Read, Shutdown::Both] {
        rt().block_on(move || {
            let (a, _b) = UnixDatagram::pair().unwrap();
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let a = Arc::new(a);
            let r = {
                let a = a.clone();
                corun_runtime::spawn(move || a.recv(&mut [0u8; 16]))
            };
            corun_runtime::sleep(Duration::from_millis(50));
            a.shutdown(how).unwrap();
            assert_eq!(r.join().unwrap().unwrap(), 0, "{how:?}: blocked");
            assert_eq!(a.recv(&mut [0u8; 16]).unwrap(), 0, "{how:?}: after");
        });
    }
}

/// The same on a plain thread (it spun in `poll(2)`, which reports the
/// socket readable), and for UDP shut down through its descriptor.
#[test]
fn datagram_recv_ends_on_shutdown_on_threads_and_for_udp() {
    use corun_netpoll::{UdpSocket, UnixDatagram};
    use std::net::Shutdown;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    let (a, _b) = UnixDatagram::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let a = Arc::new(a);
    let r = {
        let a = a.clone();
        std::thread::spawn(move || a.recv_from(&mut [0u8; 16]).map(|(n, _)| n))
    };
    std::thread::sleep(Duration::from_millis(50));
    a.shutdown(Shutdown::Read).unwrap();
    assert_eq!(r.join().unwrap().unwrap(), 0, "unix, thread");

    let udp = |coroutine: bool| {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let u = Arc::new(u);
        let r = {
            let u = u.clone();
            let f = move || u.recv(&mut [0u8; 16]);
            if coroutine {
                let h = corun_runtime::spawn(f);
                Box::new(move || h.join().unwrap()) as Box<dyn FnOnce() -> _>
            } else {
                let h = std::thread::spawn(f);
                Box::new(move || h.join().unwrap())
            }
        };
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: a valid descriptor; shutdown changes no memory.
        assert_eq!(unsafe { libc::shutdown(u.as_raw_fd(), libc::SHUT_RD) }, 0);
        assert_eq!(r().unwrap(), 0, "udp, coroutine: {coroutine}");
    };
    udp(false);
    rt().block_on(move || udp(true));
}

/// After a read shutdown a connected UDP socket's `recvfrom` returns 0
/// bytes and no sender address; std turns that into its "invalid argument" error, and
/// so must ours (it was `InvalidData` with its own text).
#[test]
fn udp_recv_from_after_a_read_shutdown_fails_as_std() {
    use std::os::fd::AsRawFd;
    let shut = |fd| {
        // SAFETY: a valid descriptor; shutdown changes no memory.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RD) }, 0);
    };
    let theirs = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        shut(u.as_raw_fd());
        u.recv_from(&mut [0u8; 16]).unwrap_err()
    };
    let ours = move || {
        let u = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        shut(u.as_raw_fd());
        u.recv_from(&mut [0u8; 16]).unwrap_err()
    };
    for e in [ours(), rt().block_on(ours)] {
        assert_eq!(e.kind(), theirs.kind());
        assert_eq!(e.to_string(), theirs.to_string());
    }
}

/// std's `try_clone`: "options set on one stream will be propagated to the
/// other stream" (timeouts are the socket's `SO_RCVTIMEO`/`SO_SNDTIMEO`,
/// and non-blocking mode its file's flag, shared by both descriptors).
/// Here they were kept per handle, so a timeout set on one handle left a
/// read through its clone waiting for ever.
#[test]
fn options_set_on_a_stream_reach_its_clones() {
    // std's behaviour, as the reference.
    {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut clone = s.try_clone().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert!(clone.read_timeout().unwrap().is_some());
        assert!(std::io::Read::read(&mut clone, &mut [0u8; 8]).is_err());
        s.set_nonblocking(true).unwrap();
        let e = std::io::Read::read(&mut clone, &mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "std");
    }
    let check = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let clone = s.try_clone().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(
            clone.read_timeout().unwrap(),
            Some(Duration::from_millis(50))
        );
        let e = (&clone).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        s.set_nonblocking(true).unwrap();
        let e = (&clone).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
    };
    std::thread::spawn(check).join().unwrap();
    rt().block_on(check);
}

/// std's sockets convert to and from `OwnedFd` (I/O safety's replacement
/// for raw descriptors); ours too, and a socket made from one still parks
/// coroutines instead of blocking its worker.
#[test]
fn sockets_convert_to_and_from_owned_fd() {
    use std::os::fd::OwnedFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::from(OwnedFd::from(listener));
    let addr = listener.local_addr().unwrap();
    let server = rt().spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut s = TcpStream::from(OwnedFd::from(s));
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    // The std side: blocking mode survived the round trip out of ours.
    let client = TcpStream::connect(addr).unwrap();
    let mut client = std::net::TcpStream::from(OwnedFd::from(client));
    client.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    server.join().unwrap();

    let (a, b) = UnixStream::pair().unwrap();
    let (mut a, mut b) = (
        UnixStream::from(OwnedFd::from(a)),
        UnixStream::from(OwnedFd::from(b)),
    );
    let h = rt().spawn(move || {
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).unwrap();
        buf
    });
    a.write_all(b"ok").unwrap();
    assert_eq!(&h.join().unwrap(), b"ok");
}

/// std passes at most `IOV_MAX` (1024) buffers to one vectored call and
/// reports what that prefix moved; the kernel refuses more with
/// `EMSGSIZE`. Ours passed them all, so a `write_vectored` or
/// `read_vectored` of 2,000 buffers failed where std's moves 1,024 bytes.
#[test]
fn vectored_transfers_of_many_buffers_move_a_prefix_as_std() {
    use std::io::{IoSlice, IoSliceMut};
    const BUFS: usize = 2000;
    let data = vec![5u8; BUFS];
    let slices: Vec<IoSlice<'_>> = data.chunks(1).map(IoSlice::new).collect();
    // std's behaviour, as the reference.
    let (std_wrote, std_read) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut a, _) = l.accept().unwrap();
        let wrote = c.write_vectored(&slices).unwrap();
        c.write_all(&data).unwrap();
        let mut back = vec![0u8; BUFS];
        let mut into: Vec<IoSliceMut<'_>> = back.chunks_mut(1).map(IoSliceMut::new).collect();
        // Both writes are queued: one read can fill every buffer it takes.
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut peeked = 0;
        while peeked < 2 * BUFS.min(1024) {
            peeked = a.peek(&mut vec![0u8; 2 * BUFS]).unwrap();
        }
        (wrote, a.read_vectored(&mut into).unwrap())
    };
    assert_eq!((std_wrote, std_read), (1024, 1024), "std");
    let check = |slices: &[IoSlice<'_>]| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.write_vectored(slices).unwrap(), std_wrote);
        c.write_all(&data).unwrap();
        let mut peeked = 0;
        while peeked < 2 * BUFS.min(1024) {
            peeked = a.peek(&mut vec![0u8; 2 * BUFS]).unwrap();
        }
        let mut back = vec![0u8; BUFS];
        let mut into: Vec<IoSliceMut<'_>> = back.chunks_mut(1).map(IoSliceMut::new).collect();
        assert_eq!((&a).read_vectored(&mut into).unwrap(), std_read);

        let (x, y) = UnixStream::pair().unwrap();
        assert_eq!((&x).write_vectored(slices).unwrap(), std_wrote);
        let mut back = vec![0u8; BUFS];
        let mut into: Vec<IoSliceMut<'_>> = back.chunks_mut(1).map(IoSliceMut::new).collect();
        assert_eq!((&y).read_vectored(&mut into).unwrap(), std_wrote);
    };
    check(&slices);
    rt().block_on(|| check(&slices));
}

#[test]
fn timeouts_travel_with_the_socket_across_std_conversions() {
    // std keeps a timeout in the socket (SO_RCVTIMEO, SO_SNDTIMEO), so it
    // survives any wrapping; ours must too, both ways.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(60))).unwrap();
    let ours = TcpStream::from_std(s).unwrap();
    assert_eq!(
        ours.read_timeout().unwrap(),
        Some(Duration::from_millis(60))
    );
    assert_eq!(ours.write_timeout().unwrap(), None);
    // And it is in force: a read with nothing to read times out.
    let (ours, took, err) = rt().block_on(move || {
        let mut ours = ours;
        let start = Instant::now();
        let err = ours.read(&mut [0u8; 8]).unwrap_err();
        (ours, start.elapsed(), err)
    });
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(took >= Duration::from_millis(60), "woke early: {took:?}");

    ours.set_read_timeout(None).unwrap();
    // Whole milliseconds: the kernel keeps these timeouts in clock ticks
    // (std reads back 4 ms for 3 us at 250 Hz).
    ours.set_write_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let back = ours.into_std().unwrap();
    assert_eq!(back.read_timeout().unwrap(), None);
    assert_eq!(
        back.write_timeout().unwrap(),
        Some(Duration::from_millis(20))
    );

    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_write_timeout(Some(Duration::from_secs(7))).unwrap();
    let u = corun_netpoll::UdpSocket::from_std(u).unwrap();
    assert_eq!(u.write_timeout().unwrap(), Some(Duration::from_secs(7)));
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let u = u.into_std().unwrap();
    assert_eq!(u.read_timeout().unwrap(), Some(Duration::from_secs(5)));

    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let a = UnixStream::from_std(a).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    a.set_read_timeout(None).unwrap();
    assert_eq!(a.into_std().unwrap().read_timeout().unwrap(), None);
}
