//! Conversions every socket type shares: to and from the std type and raw
//! descriptors, `AsFd`, `Debug`.

/// Implements the descriptor conversions for `$t` wrapping `Io<$std>`;
/// `$std_value` is an expression making a `$std` for the doc examples.
macro_rules! fd_conversions {
    ($t:ident, $std:ty, $std_value:literal) => {
        impl $t {
            /// Wraps a std value, switching it to non-blocking mode at the
            /// OS level (the wrapper still blocks, parking coroutines).
            /// Read and write timeouts set on it carry over: std keeps them
            /// in the socket.
            ///
            #[doc = concat!(
                        "```\nlet value = ", $std_value, ";\n",
                        "let s = corun_netpoll::", stringify!($t), "::from_std(value).unwrap();\n",
                        "assert!(s.local_addr().is_ok());\n```"
                    )]
            pub fn from_std(inner: $std) -> std::io::Result<$t> {
                Ok($t {
                    io: $crate::io::Io::new(inner)?,
                })
            }

            /// The std value, back in blocking mode, with this socket's read
            /// and write timeouts set on it.
            ///
            /// Clones made with `try_clone` share the open file and so its
            /// blocking mode. Their reads, writes, sends and receives still
            /// never block a worker (each call passes `MSG_DONTWAIT`), but a
            /// cloned listener's `accept` then blocks its thread as std's
            /// does.
            ///
            #[doc = concat!(
                        "```\nlet s = corun_netpoll::", stringify!($t), "::from_std(", $std_value,
                        ").unwrap();\n",
                        "let value = s.into_std().unwrap();\n",
                        "assert!(value.local_addr().is_ok());\n```"
                    )]
            pub fn into_std(self) -> std::io::Result<$std> {
                self.io.into_inner()
            }
        }

        impl TryFrom<$std> for $t {
            type Error = std::io::Error;
            fn try_from(inner: $std) -> std::io::Result<$t> {
                $t::from_std(inner)
            }
        }

        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.io.get_ref().as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }

        impl std::os::fd::IntoRawFd for $t {
            /// Leaves the descriptor in blocking mode, as std's are (see
            /// `into_std` for what that means to clones).
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                self.into_std()
                    .expect("fcntl on an open descriptor")
                    .into_raw_fd()
            }
        }

        impl std::os::fd::FromRawFd for $t {
            /// # Panics
            /// If `fd` is not an open descriptor (fcntl fails).
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $t {
                // SAFETY: the caller passes an open descriptor of this
                // kind that it gives up.
                let inner = unsafe { <$std>::from_raw_fd(fd) };
                $t::from_std(inner).expect("fcntl on an open descriptor")
            }
        }

        impl From<std::os::fd::OwnedFd> for $t {
            /// As `from_raw_fd`, for an owned descriptor of this kind.
            ///
            /// # Panics
            /// If switching it to non-blocking mode fails (fcntl on an open
            /// descriptor does not).
            fn from(fd: std::os::fd::OwnedFd) -> $t {
                $t::from_std(<$std>::from(fd)).expect("fcntl on an open descriptor")
            }
        }

        impl From<$t> for std::os::fd::OwnedFd {
            /// Leaves the descriptor in blocking mode, as `into_raw_fd`.
            fn from(value: $t) -> std::os::fd::OwnedFd {
                value
                    .into_std()
                    .expect("fcntl on an open descriptor")
                    .into()
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.io.get_ref().fmt(f)
            }
        }
    };
}

/// Implements the timeout, non-blocking and `take_error` methods;
/// `$setup` is code binding a socket to `s`, for the doc examples.
macro_rules! common_socket_methods {
    ($setup:literal) => {
        /// Sets the read timeout: a read waiting longer fails with
        /// `ErrorKind::TimedOut`. `None` waits forever; a zero duration is
        /// an `InvalidInput` error, as in std.
        ///
        #[doc = concat!(
            "```\nuse std::time::Duration;\n", $setup, "\n",
            "s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();\n",
            "assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(50)));\n",
            "assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err(), \"as in std\");\n```"
        )]
        pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.io.set_timeout($crate::io::Dir::Read, dur)
        }

        /// Sets the write timeout (see [`set_read_timeout`](Self::set_read_timeout)).
        ///
        #[doc = concat!(
            "```\nuse std::time::Duration;\n", $setup, "\n",
            "s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();\n",
            "assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));\n",
            "s.set_write_timeout(None).unwrap();\n```"
        )]
        pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.io.set_timeout($crate::io::Dir::Write, dur)
        }

        /// The read timeout.
        ///
        #[doc = concat!(
            "```\n", $setup, "\n",
            "assert_eq!(s.read_timeout().unwrap(), None, \"no timeout by default\");\n```"
        )]
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.io.timeout($crate::io::Dir::Read))
        }

        /// The write timeout.
        ///
        #[doc = concat!(
            "```\n", $setup, "\n",
            "assert_eq!(s.write_timeout().unwrap(), None, \"no timeout by default\");\n```"
        )]
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.io.timeout($crate::io::Dir::Write))
        }

        /// In non-blocking mode operations that would wait return
        /// `ErrorKind::WouldBlock` instead, as with std.
        ///
        #[doc = concat!(
            "```\n", $setup, "\n",
            "s.set_nonblocking(true).unwrap();\n",
            "s.set_nonblocking(false).unwrap();\n```"
        )]
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.io.set_nonblocking(nonblocking);
            Ok(())
        }

        /// Takes the pending socket error (`SO_ERROR`).
        ///
        #[doc = concat!(
            "```\n", $setup, "\n",
            "assert!(s.take_error().unwrap().is_none());\n```"
        )]
        pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
            self.io.get_ref().take_error()
        }
    };
}

/// `Read` and `Write` for `$t` and `&$t` through `Io`. `short_reads_drain`:
/// whether a short read proves the receive buffer empty (see
/// [`Io::io_stream`](crate::io::Io::io_stream)); a Unix stream read also
/// stops short at a message that carried ancillary data (`SCM_RIGHTS`,
/// credentials) with more data behind it, so there only `WouldBlock` does.
macro_rules! read_write {
    ($t:ident, short_reads_drain: $short_reads_drain:expr) => {
        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                let read = |s: &_| $crate::nowait::recv(s, buf);
                if $short_reads_drain {
                    self.io.io_stream(
                        $crate::io::Dir::Read,
                        corun_runtime::WaitReason::IoRead,
                        len,
                        read,
                    )
                } else {
                    self.io.io(
                        $crate::io::Dir::Read,
                        corun_runtime::WaitReason::IoRead,
                        read,
                    )
                }
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.io.io(
                    $crate::io::Dir::Read,
                    corun_runtime::WaitReason::IoRead,
                    |s| $crate::nowait::recv_vectored(s, bufs),
                )
            }
        }

        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.io.io_stream(
                    $crate::io::Dir::Write,
                    corun_runtime::WaitReason::IoWrite,
                    buf.len(),
                    |s| $crate::nowait::send(s, buf),
                )
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                // What the call passes (see `MAX_IOV`): a prefix of
                // empty buffers sends nothing, and needs no room.
                let len = bufs[..bufs.len().min($crate::nowait::MAX_IOV)]
                    .iter()
                    .fold(0usize, |n, b| n.saturating_add(b.len()));
                self.io.io_len(
                    $crate::io::Dir::Write,
                    corun_runtime::WaitReason::IoWrite,
                    len,
                    |s| $crate::nowait::send_vectored(s, bufs),
                )
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
