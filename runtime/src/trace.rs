//! The execution trace: scheduling events in Chrome's trace-event JSON,
//! which Perfetto (ui.perfetto.dev) and chrome://tracing open.
//!
//! Off, recording costs one relaxed load of [`ON`] at each hook. On, each
//! thread appends to its own buffer: no lock per event, only a flag the
//! collector checks, Dekker-style, before it takes the buffer:
//!
//! - a writer sets its buffer's `busy`, then re-checks `ON` (both SeqCst);
//! - [`stop`] clears `ON`, then waits for each buffer's `busy` to drop.
//!
//! So either the writer sees tracing stopped and backs off, or the
//! collector sees the writer busy and waits: the buffer is never touched by
//! both at once. A buffer stops growing at `MAX_EVENTS` (the overflow is
//! counted and reported in the file's metadata).
//!
//! Each worker is a track (`tid`). A coroutine's time on a worker is a
//! slice named after it; spawn, park (with its wait reason), wake, steal,
//! hand-off, timer fire and finish are instants; blocking in the netpoller
//! is a slice on the worker that blocked.

use std::cell::{RefCell, UnsafeCell};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::park::WaitReason;

/// True while recording. The one load every hook pays.
pub(crate) static ON: AtomicBool = AtomicBool::new(false);

/// Events one thread keeps before dropping further ones.
const MAX_EVENTS: usize = 1 << 21;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Spawn,
    /// A coroutine starts running on this worker.
    Run,
    /// It stopped running; `arg` says why (see `Stop`).
    Stop,
    Park,
    Wake,
    Steal,
    Handoff,
    PollBegin,
    PollEnd,
    Timer,
    Finish,
}

/// Why a run slice ended, in `arg` of a `Stop` event.
pub(crate) const STOP_PARK: u32 = 0;
pub(crate) const STOP_YIELD: u32 = 1;
pub(crate) const STOP_PREEMPT: u32 = 2;
pub(crate) const STOP_FINISH: u32 = 3;

#[derive(Clone, Copy)]
struct Event {
    ts: u64,
    kind: Kind,
    id: u64,
    arg: u32,
}

struct Buffer {
    tid: u32,
    name: String,
    busy: AtomicBool,
    events: UnsafeCell<Vec<Event>>,
    dropped: AtomicU64,
}

// SAFETY: `events` is touched by its own thread while `busy` is set and by
// the collector only after it saw `busy` clear with `ON` off (see the
// module comment), never by both at once.
unsafe impl Sync for Buffer {}

static BUFFERS: Mutex<Vec<Arc<Buffer>>> = Mutex::new(Vec::new());
static NEXT_TID: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static MINE: RefCell<Option<Arc<Buffer>>> = const { RefCell::new(None) };
}

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Records an event if tracing is on.
#[inline]
pub(crate) fn event(kind: Kind, id: u64, arg: u32) {
    if ON.load(Ordering::Relaxed) {
        record(kind, id, arg);
    }
}

#[cold]
#[inline(never)]
fn record(kind: Kind, id: u64, arg: u32) {
    let ts = epoch().elapsed().as_nanos() as u64;
    // A thread in its last steps (its locals gone) records nothing.
    let _ = MINE.try_with(|mine| {
        let mut mine = mine.borrow_mut();
        let buf = mine.get_or_insert_with(|| {
            let tid = NEXT_TID.fetch_add(1, Ordering::Relaxed);
            let name = std::thread::current()
                .name()
                .map_or_else(|| format!("thread {tid}"), str::to_owned);
            let b = Arc::new(Buffer {
                tid,
                name,
                busy: AtomicBool::new(false),
                events: UnsafeCell::new(Vec::new()),
                dropped: AtomicU64::new(0),
            });
            BUFFERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(b.clone());
            b
        });
        buf.busy.store(true, Ordering::SeqCst);
        if ON.load(Ordering::SeqCst) {
            // SAFETY: `busy` is set and tracing is on: the collector waits
            // for us (module comment).
            let events = unsafe { &mut *buf.events.get() };
            if events.len() < MAX_EVENTS {
                events.push(Event { ts, kind, id, arg });
            } else {
                buf.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        buf.busy.store(false, Ordering::SeqCst);
    });
}

static STARTED: Mutex<bool> = Mutex::new(false);

/// Starts recording scheduling events of every runtime. Returns `false` if
/// a trace is already being recorded.
///
/// ```
/// assert!(corun_runtime::trace_start());
/// corun_runtime::run(|| corun_runtime::spawn(|| 1).join().unwrap());
/// let json = corun_runtime::trace_stop();
/// assert!(json.starts_with("{\"traceEvents\":["));
/// assert!(json.contains("\"name\":\"spawn\""));
/// ```
pub fn trace_start() -> bool {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return false;
    }
    *started = true;
    epoch();
    ON.store(true, Ordering::SeqCst);
    true
}

/// Stops recording and returns the trace as Chrome trace-event JSON
/// (empty of events if none was being recorded).
///
/// ```
/// let json = corun_runtime::trace_stop(); // nothing was recording
/// assert!(json.starts_with("{\"traceEvents\":[]"));
/// assert!(corun_runtime::trace_start());
/// corun_runtime::go!(|| corun_runtime::yield_now()).join().unwrap();
/// assert!(corun_runtime::trace_stop().contains("\"name\":\"spawn\""));
/// ```
pub fn trace_stop() -> String {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    *started = false;
    ON.store(false, Ordering::SeqCst);
    let buffers = BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = String::from("{\"traceEvents\":[");
    let mut first = true;
    let mut dropped = 0;
    for b in &buffers {
        while b.busy.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        // SAFETY: tracing is off and the writer is not busy: it will see
        // `ON` off before touching the buffer again.
        let events = std::mem::take(unsafe { &mut *b.events.get() });
        dropped += b.dropped.swap(0, Ordering::Relaxed);
        if events.is_empty() {
            continue;
        }
        sep(&mut out, &mut first);
        let _ = write!(
            out,
            "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"name\":{}}}}}",
            b.tid,
            json_str(&b.name)
        );
        // A slice open when recording started has its end but no begin:
        // drop such ends so every track stays balanced.
        let mut open = 0usize;
        for e in events {
            match e.kind {
                Kind::Run | Kind::PollBegin => open += 1,
                Kind::Stop | Kind::PollEnd if open == 0 => continue,
                Kind::Stop | Kind::PollEnd => open -= 1,
                _ => {}
            }
            sep(&mut out, &mut first);
            render(&mut out, b.tid, e);
        }
    }
    let _ = write!(
        out,
        "],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"producer\":\"corun\",\"dropped_events\":{dropped}}}}}"
    );
    out
}

/// Stops recording and writes the trace to `path`.
///
/// ```
/// let path = std::env::temp_dir().join(format!("corun-doc-trace-{}.json", std::process::id()));
/// corun_runtime::trace_start();
/// corun_runtime::go!(|| ()).join().unwrap();
/// corun_runtime::trace_stop_to(&path).unwrap(); // open it in ui.perfetto.dev
/// assert!(std::fs::read_to_string(&path).unwrap().contains("traceEvents"));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn trace_stop_to(path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
    std::fs::write(path, trace_stop())
}

fn sep(out: &mut String, first: &mut bool) {
    if !*first {
        out.push(',');
    }
    *first = false;
}

fn render(out: &mut String, tid: u32, e: Event) {
    // Chrome wants microseconds; keep the nanoseconds as a fraction.
    let ts = format!("{}.{:03}", e.ts / 1000, e.ts % 1000);
    let head = |out: &mut String, name: &str, ph: &str| {
        let _ = write!(
            out,
            "{{\"name\":{},\"ph\":\"{ph}\",\"ts\":{ts},\"pid\":1,\"tid\":{tid}",
            json_str(name)
        );
    };
    let instant = |out: &mut String, name: &str, args: String| {
        head(out, name, "i");
        let _ = write!(out, ",\"s\":\"t\",\"args\":{{{args}}}}}");
    };
    match e.kind {
        Kind::Run => {
            head(out, &format!("coroutine {}", e.id), "B");
            let _ = write!(
                out,
                ",\"cat\":\"run\",\"args\":{{\"coroutine\":{}}}}}",
                e.id
            );
        }
        Kind::Stop => {
            let why = match e.arg {
                STOP_PARK => "park",
                STOP_YIELD => "yield",
                STOP_PREEMPT => "preempt",
                _ => "finish",
            };
            head(out, &format!("coroutine {}", e.id), "E");
            let _ = write!(out, ",\"cat\":\"run\",\"args\":{{\"end\":\"{why}\"}}}}");
        }
        Kind::Park => instant(
            out,
            "park",
            format!(
                "\"coroutine\":{},\"reason\":{}",
                e.id,
                json_str(reason_name(e.arg))
            ),
        ),
        Kind::Spawn => instant(out, "spawn", format!("\"coroutine\":{}", e.id)),
        Kind::Wake => instant(out, "wake", format!("\"coroutine\":{}", e.id)),
        Kind::Finish => instant(out, "finish", format!("\"coroutine\":{}", e.id)),
        Kind::Steal => instant(
            out,
            "steal",
            format!("\"coroutine\":{},\"victim_p\":{}", e.id, e.arg),
        ),
        Kind::Handoff => instant(out, "handoff", format!("\"p\":{}", e.arg)),
        Kind::Timer => instant(out, "timer", format!("\"coroutine\":{}", e.id)),
        // `arg` 1: the network poller; 0: the idle sleeper (no driver).
        Kind::PollBegin => {
            head(out, if e.arg == 1 { "netpoll" } else { "idle" }, "B");
            out.push_str(",\"cat\":\"poll\"}");
        }
        Kind::PollEnd => {
            head(out, "poll end", "E");
            let _ = write!(out, ",\"cat\":\"poll\",\"args\":{{\"woken\":{}}}}}", e.arg);
        }
    }
}

fn reason_name(arg: u32) -> &'static str {
    WaitReason::from_u8(arg as u8).as_str()
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `CORUN_TRACE=path`: record from the first runtime's start and write the
/// file when the process exits normally (`exit` or the end of `main`).
pub(crate) fn start_from_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(path) = std::env::var_os("CORUN_TRACE").filter(|p| !p.is_empty()) else {
            return;
        };
        let _ = ENV_PATH.set(path.into());
        if trace_start() {
            // SAFETY: registers a plain extern "C" function with no
            // captured state.
            unsafe { libc::atexit(write_at_exit) };
        }
    });
}

static ENV_PATH: OnceLock<std::path::PathBuf> = OnceLock::new();

extern "C" fn write_at_exit() {
    if let Some(path) = ENV_PATH.get()
        && let Err(e) = trace_stop_to(path)
    {
        eprintln!("corun: could not write CORUN_TRACE={}: {e}", path.display());
    }
}
