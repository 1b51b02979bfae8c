//! A chat server broadcasting every line to every client:
//! `cargo run --release --example chat -- --clients 50 --messages 20` (a
//! self-checking run with in-process clients), or
//! `cargo run --release --example chat -- --listen 127.0.0.1:7020` and
//! several `nc 127.0.0.1 7020`.
//!
//! One hub coroutine owns the member list; nothing else touches it, so it
//! needs no lock (Go's "share memory by communicating"). Each connection
//! has a reader coroutine that forwards lines to the hub and a writer
//! coroutine that drains the member's outbox, a bounded channel: a member
//! whose outbox is full (it does not read) is dropped rather than allowed
//! to stall everyone else.

#[path = "support/flags.rs"]
mod flags;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use corun::chan::{Receiver, Sender, bounded, unbounded};
use corun::go;
use corun::net::{TcpListener, TcpStream};
use corun::sync::Barrier;
use flags::flag;

enum Event {
    Join(u64, Sender<Arc<str>>),
    Leave(u64),
    Line(u64, String),
}

/// Owns the members; broadcasts each line to all of them.
fn hub(events: Receiver<Event>) {
    let mut members: HashMap<u64, Sender<Arc<str>>> = HashMap::new();
    for event in events.iter() {
        match event {
            Event::Join(id, outbox) => {
                let _ = outbox.try_send(format!("welcome, you are {id}").into());
                members.insert(id, outbox);
            }
            Event::Leave(id) => {
                members.remove(&id);
            }
            Event::Line(id, text) => {
                let line: Arc<str> = format!("{id}: {text}").into();
                // A full outbox means a member that stopped reading.
                members.retain(|_, outbox| outbox.try_send(line.clone()).is_ok());
            }
        }
    }
}

fn member(id: u64, conn: TcpStream, events: Sender<Event>, outbox_cap: usize) {
    let (outbox, inbox) = bounded::<Arc<str>>(outbox_cap);
    events.send(Event::Join(id, outbox)).unwrap();
    let writer_conn = conn.try_clone().unwrap();
    let writer = go!(move || {
        for line in inbox.iter() {
            if writeln!(&writer_conn, "{line}").is_err() {
                break;
            }
        }
        // Dropped by the hub or the reader left: end the connection.
        let _ = writer_conn.shutdown(std::net::Shutdown::Both);
    });
    for line in BufReader::new(&conn).lines() {
        let Ok(line) = line else { break };
        if events.send(Event::Line(id, line)).is_err() {
            break;
        }
    }
    let _ = events.send(Event::Leave(id));
    writer.join().unwrap();
}

fn serve(listener: TcpListener, outbox_cap: usize) -> Sender<Event> {
    let (events, rx) = unbounded::<Event>();
    go!(move || hub(rx));
    let accept_events = events.clone();
    go!(move || {
        for (id, conn) in (1u64..).zip(listener.incoming()) {
            let Ok(conn) = conn else { continue };
            let events = accept_events.clone();
            go!(move || member(id, conn, events, outbox_cap));
        }
    });
    events
}

fn main() {
    let listen: String = flag("listen", String::new());
    let clients: usize = flag("clients", 50);
    let messages: usize = flag("messages", 20);
    // Lines a member may fall behind before it is dropped. The self-check
    // sizes it to hold every broadcast, since its clients only read after
    // sending; a smaller `--outbox` shows members being dropped.
    let outbox: usize = flag("outbox", 0);
    corun::run(move || {
        if !listen.is_empty() {
            let listener = TcpListener::bind(&listen).expect("listen");
            println!("chat on {}", listener.local_addr().unwrap());
            serve(listener, if outbox == 0 { 256 } else { outbox });
            loop {
                corun::sleep(Duration::from_secs(3600));
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        serve(
            listener,
            if outbox == 0 {
                clients * messages + 1
            } else {
                outbox
            },
        );
        let all_joined = Arc::new(Barrier::new(clients));
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let all_joined = all_joined.clone();
                go!(move || {
                    let conn = TcpStream::connect(addr).unwrap();
                    let reader = conn.try_clone().unwrap();
                    // Members that were dropped never send all their lines:
                    // a quiet spell ends the reading.
                    reader
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                    let mut lines = BufReader::new(reader).lines();
                    let welcome = lines.next().unwrap().unwrap();
                    assert!(welcome.starts_with("welcome"), "{welcome}");
                    all_joined.wait(); // every member is in before anyone talks
                    let sender = go!(move || {
                        for m in 0..messages {
                            if writeln!(&conn, "client {c} message {m}").is_err() {
                                break; // dropped by the server
                            }
                        }
                        conn
                    });
                    let mut per_sender = vec![0usize; clients];
                    for _ in 0..clients * messages {
                        // End of stream (the hub dropped us) or silence.
                        let Some(Ok(line)) = lines.next() else { break };
                        let from: usize = line.split(' ').nth(2).unwrap().parse().unwrap();
                        per_sender[from] += 1;
                    }
                    drop(sender.join().unwrap());
                    per_sender
                })
            })
            .collect();
        let mut dropped = 0;
        for h in handles {
            let per_sender = h.join().unwrap();
            assert!(
                per_sender.iter().all(|&n| n <= messages),
                "duplicates: {per_sender:?}"
            );
            if per_sender.iter().any(|&n| n < messages) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            println!(
                "chat: {dropped} of {clients} clients missed lines: they fell more than {outbox} lines behind and were dropped, or lost lines from dropped senders"
            );
            assert!(outbox != 0, "with the default outbox nobody may be dropped");
            return;
        }
        println!(
            "chat: {clients} clients each sent {messages} lines and received all {} broadcasts",
            clients * messages
        );
        println!("ok: nothing lost, nothing duplicated");
        // The hub and the accept loop are still parked; as in Go, the
        // process ends when main returns.
    });
}
