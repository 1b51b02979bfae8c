//! `metrics_text` parses as the Prometheus text format and agrees with
//! `stats()`; the coroutine profile counts a known set of coroutines exactly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{Runtime, State, Unparker, WaitReason};

/// One parsed sample: family name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// A strict reader of the exposition format: HELP and TYPE once per family,
/// before its samples; samples of a family contiguous; valid names, labels
/// and values; counters named `_total`.
fn parse(text: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name), "bad name in {line:?}");
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
            if let Some(prev) = current.replace(name.to_owned()) {
                finished.insert(prev);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(matches!(kind, "counter" | "gauge"), "{line:?}");
            assert_eq!(current.as_deref(), Some(name), "TYPE after its HELP");
            assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {line:?}"
        );
        assert!(!finished.contains(name));
        let mut map = HashMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
            assert!(name_ok(key), "bad label name {key:?}");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("unterminated label value") {
                    (_, '\\') => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c}"),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            assert!(map.insert(key.to_owned(), value).is_none(), "label twice");
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        samples.push((name.to_owned(), map, value));
    }
    for name in helped {
        assert!(typed.contains_key(&name), "{name} has no TYPE");
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .2
}

/// Coroutines parked on purpose, and how to let them go.
struct Parked {
    go: Arc<AtomicBool>,
    unparkers: Arc<Mutex<Vec<Unparker>>>,
    handles: Vec<corun_runtime::JoinHandle<()>>,
}

impl Parked {
    fn new() -> Parked {
        Parked {
            go: Arc::new(AtomicBool::new(false)),
            unparkers: Arc::new(Mutex::new(Vec::new())),
            handles: Vec::new(),
        }
    }

    /// Parks `n` more coroutines, all spawned at this one site.
    fn spawn(&mut self, rt: &Runtime, n: usize) {
        for _ in 0..n {
            let go = self.go.clone();
            let unparkers = self.unparkers.clone();
            self.handles.push(rt.spawn(move || {
                unparkers.lock().unwrap().push(corun_runtime::unparker());
                while !go.load(Ordering::SeqCst) {
                    corun_runtime::park(WaitReason::Park);
                }
            }));
        }
    }

    fn release(self) {
        self.go.store(true, Ordering::SeqCst);
        for u in self.unparkers.lock().unwrap().iter() {
            u.unpark();
        }
        for h in self.handles {
            h.join().unwrap();
        }
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn metrics_parse_and_agree_with_stats() {
    let rt = Runtime::builder()
        .workers(2)
        .name("metrics \"test\"")
        .build()
        .unwrap();
    let mut parked = Parked::new();
    parked.spawn(&rt, 25);
    wait_until("25 parked", || rt.stats().waiting == 25);
    let before = rt.stats();
    let samples = parse(&corun_runtime::metrics_text());
    let after = rt.stats();
    let me = [("runtime", "metrics \"test\"")];
    let with_state = |s| [me[0], ("state", s)];
    assert_eq!(
        sample(&samples, "corun_coroutines", &with_state("waiting")),
        25.0
    );
    assert_eq!(
        sample(&samples, "corun_coroutines", &with_state("running")),
        0.0
    );
    assert_eq!(
        sample(&samples, "corun_coroutines", &with_state("runnable")),
        0.0
    );
    assert_eq!(
        sample(
            &samples,
            "corun_coroutines_waiting",
            &[me[0], ("reason", "park")]
        ),
        25.0
    );
    assert_eq!(sample(&samples, "corun_processors", &me), 2.0);
    assert_eq!(
        sample(&samples, "corun_coroutines_spawned_total", &me),
        25.0
    );
    let switches = sample(&samples, "corun_switches_total", &me) as u64;
    assert!((before.switches..=after.switches).contains(&switches));
    assert_eq!(sample(&samples, "corun_threads", &me) as usize, before.ms);
    assert!(sample(&samples, "corun_stacks_in_use", &[]) >= 25.0);
    assert!(sample(&samples, "corun_stack_bytes_reserved", &[]) > 0.0);
    assert!(sample(&samples, "corun_task_bytes_retained", &[]) > 0.0);
    assert!(sample(&samples, "corun_stack_bytes_resident", &[]) > 0.0);
    parked.release();
}

#[test]
fn profile_counts_a_known_set_exactly() {
    let rt = Runtime::builder()
        .workers(2)
        .name("profile")
        .build()
        .unwrap();
    let mut parked = Parked::new();
    parked.spawn(&rt, 37);
    let sleepers: Vec<_> = (0..5)
        .map(|_| rt.spawn(|| corun_runtime::sleep(Duration::from_secs(2))))
        .collect();
    wait_until("42 waiting", || rt.stats().waiting == 42);
    let profile = rt.block_on(corun_runtime::coroutine_profile);
    // The main coroutine of block_on is running while it takes the profile.
    assert_eq!(profile.total, 43, "{profile}");
    let park_group = profile
        .groups
        .iter()
        .find(|g| g.wait_reason == WaitReason::Park)
        .expect("a park group");
    assert_eq!(park_group.count, 37);
    assert_eq!(park_group.state, State::Waiting);
    assert!(park_group.spawn_site.file().ends_with("metrics.rs"));
    let sleep_group = profile
        .groups
        .iter()
        .find(|g| g.wait_reason == WaitReason::Sleep)
        .expect("a sleep group");
    assert_eq!(sleep_group.count, 5);
    assert_ne!(sleep_group.spawn_site, park_group.spawn_site);
    assert_eq!(profile.groups[0], *park_group, "largest group first");
    assert_eq!(profile.groups.iter().map(|g| g.count).sum::<usize>(), 43);
    let text = profile.to_string();
    assert!(text.starts_with("coroutine profile: total 43\n"), "{text}");
    assert!(
        text.contains(&format!("37 @ {} [park] oldest ", park_group.spawn_site)),
        "{text}"
    );
    parked.release();
    for h in sleepers {
        h.join().unwrap();
    }
}
