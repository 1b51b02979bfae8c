//! corun: Go's concurrency model for Rust.
//!
//! This facade re-exports the workspace crates. Today it carries the stack
//! layer ([`stacks`]); the scheduler, channels, sync primitives and network
//! types arrive with their crates.

#![deny(unsafe_op_in_unsafe_fn)]

/// Guarded, lazily committed, pooled coroutine stacks (`corun-stacks`).
pub mod stacks {
    pub use corun_stacks::{
        DEFAULT_STACK_SIZE, GuardMode, MAX_STACK_SIZE, MIN_STACK_SIZE, Stats, grow,
        remaining_stack, resident_bytes, stats, trim, validate_size,
    };
}
