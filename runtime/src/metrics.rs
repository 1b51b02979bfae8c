//! Metrics in the Prometheus text format, and the coroutine profile (Go's
//! goroutine profile: live coroutines grouped by spawn site and wait).
//!
//! Both are built on demand from the same counters as [`crate::stats`]:
//! nothing is recorded on the hot paths for them. A scrape walks every
//! live coroutine once (for the per-reason gauge), so it costs O(live
//! coroutines); scrape every few seconds, not in a loop.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::panic::Location;
use std::time::Duration;

use crate::introspect::{State, Stats, coroutines_of, stats_of};
use crate::park::WaitReason;
use crate::sched::Shared;

/// Every runtime's counters and gauges, and the stack pool's, in the
/// Prometheus text exposition format (version 0.0.4). Each sample carries
/// the runtime's name as the `runtime` label.
///
/// ```
/// corun_runtime::run(|| ());
/// let text = corun_runtime::metrics_text();
/// assert!(text.contains("# TYPE corun_coroutines gauge"));
/// assert!(text.contains("corun_coroutines_spawned_total{runtime=\"global\"}"));
/// ```
pub fn metrics_text() -> String {
    let runtimes: Vec<(&'static Shared, Stats)> = crate::runtime::all()
        .into_iter()
        .map(|s| (s, stats_of(s)))
        .collect();
    let mut out = String::new();
    let mut family = |name: &str,
                      kind: &str,
                      help: &str,
                      samples: &mut dyn Iterator<Item = (String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_runtime = |f: fn(&Stats) -> u64| {
        runtimes
            .iter()
            .map(move |(s, st)| (runtime_label(s), f(st).to_string()))
    };
    family(
        "corun_coroutines",
        "gauge",
        "Live coroutines by scheduling state.",
        &mut runtimes.iter().flat_map(|(s, st)| {
            [
                ("running", st.running),
                ("runnable", st.runnable),
                ("waiting", st.waiting),
                ("syscall", st.syscall),
            ]
            .map(|(state, n)| {
                (
                    format!("{},state=\"{state}\"", runtime_label(s)),
                    n.to_string(),
                )
            })
        }),
    );
    family(
        "corun_coroutines_waiting",
        "gauge",
        "Parked coroutines by wait reason.",
        &mut runtimes.iter().flat_map(|(s, _)| {
            let mut by_reason: BTreeMap<&'static str, usize> = BTreeMap::new();
            for c in coroutines_of(s) {
                if c.state == State::Waiting {
                    *by_reason.entry(c.wait_reason.as_str()).or_default() += 1;
                }
            }
            by_reason.into_iter().map(move |(reason, n)| {
                (
                    format!("{},reason=\"{}\"", runtime_label(s), escape(reason)),
                    n.to_string(),
                )
            })
        }),
    );
    let counters: [Family; 6] = [
        (
            "corun_coroutines_spawned_total",
            "Coroutines spawned.",
            |s| s.spawned,
        ),
        (
            "corun_switches_total",
            "Switches from a coroutine back to the scheduler.",
            |s| s.switches,
        ),
        (
            "corun_steals_total",
            "Coroutines stolen from another processor's queue.",
            |s| s.steals,
        ),
        (
            "corun_handoffs_total",
            "Processors taken from a blocked or stuck thread and handed on.",
            |s| s.handoffs,
        ),
        (
            "corun_netpoll_polls_total",
            "Polls of the network driver by worker threads.",
            |s| s.netpoll_polls,
        ),
        (
            "corun_netpoll_woken_total",
            "Waiters woken by the network driver.",
            |s| s.netpoll_woken,
        ),
    ];
    for (name, help, f) in counters {
        family(name, "counter", help, &mut per_runtime(f));
    }
    let gauges: [Family; 7] = [
        (
            "corun_processors",
            "Processors (the workers setting).",
            |s| s.ps as u64,
        ),
        ("corun_processors_idle", "Idle processors.", |s| {
            s.idle_ps as u64
        }),
        ("corun_threads", "Worker threads alive.", |s| s.ms as u64),
        (
            "corun_threads_idle",
            "Worker threads asleep in the idle list.",
            |s| s.idle_ms as u64,
        ),
        (
            "corun_threads_spinning",
            "Worker threads spinning in search of work.",
            |s| s.spinning_ms as u64,
        ),
        (
            "corun_timers",
            "Timer heap entries (armed, plus cancelled ones not yet swept).",
            |s| s.timers as u64,
        ),
        (
            "corun_global_queue_length",
            "Coroutines waiting in the global run queues.",
            |s| s.global_queue as u64,
        ),
    ];
    for (name, help, f) in gauges {
        family(name, "gauge", help, &mut per_runtime(f));
    }
    let stacks = corun_stacks::stats();
    let process = |v: usize| std::iter::once((String::new(), v.to_string()));
    family(
        "corun_stacks_in_use",
        "gauge",
        "Coroutine stacks in use (all runtimes).",
        &mut process(stacks.in_use),
    );
    family(
        "corun_stacks_pooled",
        "gauge",
        "Stacks pooled for reuse.",
        &mut process(stacks.pooled),
    );
    family(
        "corun_stack_bytes_reserved",
        "gauge",
        "Address space reserved for stacks.",
        &mut process(stacks.reserved_bytes),
    );
    family(
        "corun_task_bytes_retained",
        "gauge",
        "Memory carved for task structures, kept for reuse.",
        &mut process(crate::task_cache::retained_bytes()),
    );
    if let Ok(resident) = corun_stacks::resident_bytes() {
        family(
            "corun_stack_bytes_resident",
            "gauge",
            "Stack memory resident in RAM (sampled with mincore).",
            &mut process(resident),
        );
    }
    out
}

/// A per-runtime metric: name, help text, and how to read it from `Stats`.
type Family = (&'static str, &'static str, fn(&Stats) -> u64);

fn runtime_label(s: &Shared) -> String {
    format!("runtime=\"{}\"", escape(&s.name))
}

/// Escapes a label value as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Live coroutines with the same spawn site, state and wait reason.
///
/// ```
/// use corun_runtime::{State, coroutine_profile};
///
/// corun_runtime::run(|| {
///     let profile = coroutine_profile();
///     let me = profile.groups.iter().find(|g| g.state == State::Running).unwrap();
///     assert!(me.count >= 1);
///     println!("{} x {} at {}", me.count, me.state.as_str(), me.spawn_site);
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoroutineGroup {
    /// Where they were spawned.
    pub spawn_site: &'static Location<'static>,
    /// Their scheduling state.
    pub state: State,
    /// What they wait for (`WaitReason::None` unless waiting).
    pub wait_reason: WaitReason,
    /// How many.
    pub count: usize,
    /// The longest time one of them has been in this state.
    pub oldest: Duration,
}

/// The coroutine profile of a runtime: groups, largest first. A leak shows
/// as a group that keeps growing, with an old `oldest`.
///
/// ```
/// corun_runtime::run(|| {
///     let profile = corun_runtime::coroutine_profile();
///     assert_eq!(profile.total, profile.groups.iter().map(|g| g.count).sum::<usize>());
///     assert!(profile.groups.windows(2).all(|w| w[0].count >= w[1].count));
/// });
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CoroutineProfile {
    /// Live coroutines in all groups.
    pub total: usize,
    /// Groups by descending count (then by spawn site).
    pub groups: Vec<CoroutineGroup>,
}

/// Groups the current runtime's live coroutines (the global runtime's
/// outside coroutines) by spawn site, state and wait reason.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::{Duration, Instant};
/// use corun_runtime::{WaitReason, coroutine_profile, park, unparker};
///
/// corun_runtime::run(|| {
///     let go_on = Arc::new(AtomicBool::new(false));
///     let (tx, rx) = std::sync::mpsc::channel();
///     let hs: Vec<_> = (0..3)
///         .map(|_| {
///             let (go_on, tx) = (go_on.clone(), tx.clone());
///             corun_runtime::spawn(move || {
///                 tx.send(unparker()).unwrap();
///                 while !go_on.load(Ordering::Acquire) {
///                     park(WaitReason::Semaphore);
///                 }
///             })
///         })
///         .collect();
///     // However loaded the machine, the three end up parked at one site.
///     let started = Instant::now();
///     loop {
///         let profile = coroutine_profile();
///         let parked = profile
///             .groups
///             .iter()
///             .any(|g| g.wait_reason == WaitReason::Semaphore && g.count == 3);
///         if parked {
///             break;
///         }
///         assert!(started.elapsed() < Duration::from_secs(30), "{profile}");
///         corun_runtime::sleep(Duration::from_millis(1));
///     }
///     go_on.store(true, Ordering::Release);
///     for u in rx.iter().take(3) {
///         u.unpark();
///     }
///     for h in hs {
///         h.join().unwrap();
///     }
/// });
/// ```
pub fn coroutine_profile() -> CoroutineProfile {
    profile_of(crate::sched::current_shared())
}

pub(crate) fn profile_of(shared: &Shared) -> CoroutineProfile {
    type Key = (&'static str, u32, u32, State, WaitReason);
    let mut groups: BTreeMap<Key, CoroutineGroup> = BTreeMap::new();
    let mut total = 0;
    for c in coroutines_of(shared) {
        total += 1;
        let site = c.spawn_site;
        let key = (
            site.file(),
            site.line(),
            site.column(),
            c.state,
            c.wait_reason,
        );
        let g = groups.entry(key).or_insert(CoroutineGroup {
            spawn_site: site,
            state: c.state,
            wait_reason: c.wait_reason,
            count: 0,
            oldest: Duration::ZERO,
        });
        g.count += 1;
        g.oldest = g.oldest.max(c.time_in_state);
    }
    let mut groups: Vec<CoroutineGroup> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    CoroutineProfile { total, groups }
}

/// Go's `debug=1` goroutine profile layout:
///
/// ```text
/// coroutine profile: total 1003
/// 1000 @ src/main.rs:12:5 [chan receive] oldest 2m3s
/// ```
impl fmt::Display for CoroutineProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "coroutine profile: total {}", self.total)?;
        for g in &self.groups {
            let what = match g.state {
                State::Waiting => g.wait_reason.as_str(),
                s => s.as_str(),
            };
            let secs = g.oldest.as_secs();
            let age = if secs >= 60 {
                format!("{}m{}s", secs / 60, secs % 60)
            } else {
                format!("{:.3}s", g.oldest.as_secs_f64())
            };
            writeln!(f, "{} @ {} [{what}] oldest {age}", g.count, g.spawn_site)?;
        }
        Ok(())
    }
}
