//! Socket transfers that never block, whatever the descriptor's file
//! status flags say.
//!
//! `try_clone` duplicates a descriptor, and duplicates share one open file
//! and its `O_NONBLOCK` flag. When one of them is turned back into a std
//! value (`into_std`, `into_raw_fd`) the flag is cleared for all, and a
//! plain `recv` on a remaining clone would block its worker thread and
//! ignore its timeout. So the sockets' transfers pass `MSG_DONTWAIT`,
//! which makes each call non-blocking by itself. (Sends also pass
//! `MSG_NOSIGNAL`, as std's do: a peer that went away is an `EPIPE` for
//! its connection, not a `SIGPIPE` for the process.)
//!
//! Not covered, because no per-call flag exists for them or std offers no
//! way to build their result from a raw address: `accept`, `send_to`,
//! `recv_from` and `peek_from`. A clone of a listener or of an unconnected
//! datagram socket whose twin went back to std blocks like std's until
//! it is converted too (documented on `into_std`).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `recv(2)` with `MSG_DONTWAIT` and `extra` flags (`MSG_PEEK`).
fn recv_flags(fd: RawFd, buf: &mut [u8], extra: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call's
    // duration; a bad descriptor is an error, never undefined behaviour.
    check(unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | extra,
        )
    })
}

/// Receives into `buf` without blocking.
pub(crate) fn recv(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(s.as_raw_fd(), buf, 0)
}

/// Peeks into `buf` without blocking.
pub(crate) fn peek(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(s.as_raw_fd(), buf, libc::MSG_PEEK)
}

/// Sends `buf` without blocking.
pub(crate) fn send(s: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call's
    // duration.
    check(unsafe {
        libc::send(
            s.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// Receives into `bufs` (scatter) without blocking.
pub(crate) fn recv_vectored(s: &impl AsRawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (its docs).
    msg.msg_iov = bufs.as_mut_ptr().cast();
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs.len()` iovecs, each valid for writes of
    // its length, for the call's duration.
    check(unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) })
}

/// Sends `bufs` (gather) without blocking.
pub(crate) fn send_vectored(s: &impl AsRawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix; `sendmsg` only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs.len()` iovecs, each valid for reads of
    // its length, for the call's duration.
    check(unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn transfers_do_not_block_on_a_blocking_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        // Both ends in blocking mode: only the flag keeps these from waiting.
        let mut buf = [0u8; 8];
        assert_eq!(
            recv(&a, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            peek(&a, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let mut iov = [IoSliceMut::new(&mut buf)];
        let e = recv_vectored(&a, &mut iov).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        assert_eq!(send(&b, b"hey").unwrap(), 3);
        assert_eq!(
            send_vectored(&b, &[IoSlice::new(b"12"), IoSlice::new(b"3")]).unwrap(),
            3
        );
        assert_eq!(peek(&a, &mut buf).unwrap(), 6);
        let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
        let mut iov = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
        assert_eq!(recv_vectored(&a, &mut iov).unwrap(), 6);
        assert_eq!((&x, &y[..2]), (b"hey1", &b"23"[..]));

        // Fill the send buffer: the next send would block.
        let chunk = [0u8; 65536];
        let full = loop {
            match send(&b, &chunk) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_send_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert_eq!(
            send(&b, b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
