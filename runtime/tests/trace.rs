//! The execution trace of a small program is valid Chrome trace-event JSON
//! with the expected events in causal order. Alone in its binary: tracing
//! records every thread of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corun_runtime::{Runtime, Unparker, WaitReason};
use serde_json::Value;

#[test]
fn trace_is_valid_json_in_causal_order() {
    let rt = Runtime::builder()
        .workers(2)
        .name("traced")
        .build()
        .unwrap();
    assert!(corun_runtime::trace_start());
    assert!(!corun_runtime::trace_start(), "a second start is refused");
    let (waiter_id, sleeper_id) = rt.block_on(|| {
        let slot: Arc<Mutex<Option<Unparker>>> = Arc::new(Mutex::new(None));
        let published = slot.clone();
        let waiter = corun_runtime::spawn(move || {
            *published.lock().unwrap() = Some(corun_runtime::unparker());
            corun_runtime::park(WaitReason::ChanReceive);
            corun_runtime::current().unwrap().id()
        });
        let sleeper = corun_runtime::spawn(|| {
            corun_runtime::sleep(Duration::from_millis(5));
            corun_runtime::current().unwrap().id()
        });
        // Wake the waiter once it has parked.
        loop {
            let parked = corun_runtime::coroutines()
                .iter()
                .any(|c| c.wait_reason == WaitReason::ChanReceive);
            if parked {
                break;
            }
            corun_runtime::sleep(Duration::from_millis(1));
        }
        slot.lock().unwrap().take().unwrap().unpark();
        let hs: Vec<_> = (0..50).map(|i| corun_runtime::spawn(move || i)).collect();
        for h in hs {
            h.join().unwrap();
        }
        (waiter.join().unwrap(), sleeper.join().unwrap())
    });
    let json = corun_runtime::trace_stop();
    let v: Value = serde_json::from_str(&json).expect("valid JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    assert_eq!(v["otherData"]["dropped_events"], 0);

    // Every event has the fields viewers need; B/E nest per thread.
    let mut depth: HashMap<u64, i64> = HashMap::new();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        let tid = e["tid"].as_u64().expect("tid");
        assert_eq!(e["pid"], 1);
        if ph == "M" {
            assert_eq!(e["name"], "thread_name");
            continue;
        }
        assert!(e["ts"].as_f64().is_some(), "{e}");
        let d = depth.entry(tid).or_default();
        match ph {
            "B" => *d += 1,
            "E" => *d -= 1,
            "i" => {}
            other => panic!("unexpected phase {other}"),
        }
        assert!(
            (0..=1).contains(d),
            "unbalanced slices on thread {tid}: {e}"
        );
        *kinds
            .entry(e["name"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for kind in ["spawn", "park", "wake", "finish", "timer"] {
        assert!(kinds.contains_key(kind), "no {kind} event in {kinds:?}");
    }
    assert!(
        kinds.keys().any(|k| k.starts_with("coroutine ")),
        "no run slices"
    );

    // Causal order for the two coroutines we know.
    let when = |name: &str, id: u64| -> Vec<f64> {
        let mut ts: Vec<f64> = events
            .iter()
            .filter(|e| e["args"]["coroutine"] == id)
            .filter(|e| e["name"] == name || (name == "run" && e["ph"] == "B"))
            .map(|e| e["ts"].as_f64().unwrap())
            .collect();
        ts.sort_by(f64::total_cmp);
        ts
    };
    for id in [waiter_id, sleeper_id] {
        let spawn = when("spawn", id);
        let run = when("run", id);
        let park = when("park", id);
        let finish = when("finish", id);
        assert_eq!(spawn.len(), 1, "coroutine {id}");
        assert_eq!(finish.len(), 1, "coroutine {id}");
        assert!(run.len() >= 2, "coroutine {id} ran once only: {run:?}");
        assert!(spawn[0] <= run[0], "coroutine {id}: run before spawn");
        assert!(
            park[0] < *run.last().unwrap(),
            "coroutine {id}: no run after park"
        );
        assert!(*run.last().unwrap() <= finish[0]);
    }
    let park = when("park", waiter_id);
    let wake = when("wake", waiter_id);
    assert!(
        park[0] <= wake[0],
        "woken before it parked: {park:?} {wake:?}"
    );
    let reason = events
        .iter()
        .find(|e| e["name"] == "park" && e["args"]["coroutine"] == waiter_id)
        .unwrap();
    assert_eq!(reason["args"]["reason"], "chan receive");
    let sleeper_timer = when("timer", sleeper_id);
    assert_eq!(sleeper_timer.len(), 1);
    assert!(when("park", sleeper_id)[0] <= sleeper_timer[0]);

    // Stopped means stopped: nothing is recorded now.
    rt.block_on(|| corun_runtime::spawn(|| ()).join().unwrap());
    let empty: Value = serde_json::from_str(&corun_runtime::trace_stop()).unwrap();
    assert_eq!(empty["traceEvents"].as_array().unwrap().len(), 0);
}
