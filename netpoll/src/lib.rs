//! corun-netpoll: the poller in the scheduler's idle path, and std::net-shaped socket types.

#![deny(unsafe_op_in_unsafe_fn)]
