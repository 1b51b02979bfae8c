//! corun-sync: channels, select!, locks, WaitGroup, Context and ErrGroup for coroutines.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod chan;
pub mod context;
pub mod sync;
