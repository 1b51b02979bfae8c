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
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use corun_netpoll::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! corun_runtime::go!(move || {
//!     for conn in listener.incoming() {
//!         // one coroutine per connection, as in Go
//!         corun_runtime::go!(move || {
//!             let conn = conn.unwrap();
//!             let mut line = String::new();
//!             while BufReader::new(&conn).read_line(&mut line).unwrap() > 0 {
//!                 (&conn).write_all(line.to_uppercase().as_bytes()).unwrap();
//!                 line.clear();
//!             }
//!         });
//!     }
//! });
//! // The same socket types work from a plain thread.
//! let mut c = TcpStream::connect(addr).unwrap();
//! c.write_all(b"hello\n").unwrap();
//! let mut reply = String::new();
//! BufReader::new(&c).read_line(&mut reply).unwrap();
//! assert_eq!(reply, "HELLO\n");
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

#[macro_use]
mod fdconv;
mod addr;
mod driver;
mod epoll;
mod io;
mod nowait;
mod pollfd;
mod rawaddr;
mod tcp;
mod udp;
mod unix;

pub use pollfd::PollFd;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

/// `std::net::Shutdown`, re-exported for `shutdown` calls.
pub use std::net::Shutdown;
