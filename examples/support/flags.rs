//! `--name value` options with defaults, for the small examples.

use std::str::FromStr;

/// The value after `--name` on the command line, or `default`. Exits with
/// a message if the value does not parse.
pub fn flag<T: FromStr>(name: &str, default: T) -> T {
    let key = format!("--{name}");
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| *a == key) {
        None => default,
        Some(i) => match args.get(i + 1).map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => {
                eprintln!("{key} needs a valid value");
                std::process::exit(2)
            }
        },
    }
}
