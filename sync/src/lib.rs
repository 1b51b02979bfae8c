//! corun-sync: channels, select!, locks, WaitGroup, Context and ErrGroup for coroutines.
//!
//! ```
//! use corun_sync::chan::bounded;
//! use corun_sync::sync::{Mutex, WaitGroup};
//!
//! let (jobs, queue) = bounded::<u32>(8);
//! let total = std::sync::Arc::new(Mutex::new(0));
//! let wg = WaitGroup::new();
//! for _ in 0..4 {
//!     let (queue, total) = (queue.clone(), total.clone());
//!     wg.go(move || {
//!         for n in queue {
//!             *total.lock().unwrap() += n;
//!         }
//!     });
//! }
//! for n in 1..=100 {
//!     jobs.send(n).unwrap();
//! }
//! drop(jobs); // close: the workers' loops end
//! wg.wait();
//! assert_eq!(*total.lock().unwrap(), 5050);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod chan;
pub mod context;
pub mod sync;
