//! corun-netpoll: the network poller in the scheduler's idle path, and
//! std::net-shaped sockets that park coroutines instead of threads.
//!
//! Idle workers block in one epoll (Linux only) with the next
//! timer as their timeout, the way Go's `findrunnable` polls the network;
//! readiness wakes the waiting coroutines straight from the thread that
//! polled. Socket types keep std's shapes: `bind`, `accept`, `connect`,
//! `Read`/`Write` for `T` and `&T`, timeouts, `try_clone`, conversions.
//! Outside coroutines they behave like the std types (blocking in
//! `poll(2)` on the one descriptor), so the same code runs in both.
//!
//! `docs/netpoll.md` explains the design.

#![deny(unsafe_op_in_unsafe_fn)]

#[macro_use]
mod fdconv;
mod addr;
mod driver;
mod epoll;
mod io;
mod pollfd;
mod tcp;
mod udp;
mod unix;

pub use pollfd::PollFd;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

/// `std::net::Shutdown`, re-exported for `shutdown` calls.
pub use std::net::Shutdown;
