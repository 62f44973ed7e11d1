//! Test guest for the host's sandbox: a ticket-routing plugin that misbehaves as the config
//! key `behaviour` (a JSON string, default `"ok"`) asks. Whatever it tries and is refused is
//! reported in the route's `reason`.
//!
//! | `behaviour` | what it does |
//! | --- | --- |
//! | `ok` | a normal route, `reason` `ok` |
//! | `loop` | spins forever |
//! | `grow-memory` | allocates and touches 1 MiB blocks forever |
//! | `recurse` | recurses without bound |
//! | `huge-output` | returns an 8 MiB `reason` |
//! | `huge-notifications` | returns 100 000 notifications |
//! | `open-file` | reads `/etc/passwd`, writes `/data/probe.txt` |
//! | `write-private` | writes `/data/note.txt` and reads it back |
//! | `open-socket` | connects to 127.0.0.1:5432 |
//! | `peek-other-dealer` | looks up the customer of config `customer_id` |
//! | `outbound` | GETs config `url`, with the credential handle of config `credential` |
//! | `panic` | panics |
//! | `store` | increments the store's `count` |
//! | `emit` | emits an event and a notification, then routes as `ok` |
//! | `env` | counts its environment variables and arguments |
//! | `clock` | reports the host clock |
//! | `sleep` | `std::thread::sleep`s config `ms` (default 15 000) milliseconds |
//! | `poll` | polls a list of monotonic-clock subscriptions (an instant and a duration `ms` ahead, default 15 000) until `ms` have passed by its own count |

use std::hint::black_box;

use dealer_sdk::dates::{HOUR, MINUTE};
use dealer_sdk::outbound::{self, Request};
use dealer_sdk::ticket_routing::{Guest, Notification, Priority, Route, Ticket};
use dealer_sdk::types::HostError;
use dealer_sdk::{clock, config, events, records, store};

const MIB: usize = 1 << 20;

/// What `write-private` writes to `/data/note.txt` and expects to read back.
pub const NOTE: &str = "private note";

struct Hostile;

impl Guest for Hostile {
    fn route_ticket(ticket: Ticket) -> Result<Route, String> {
        let behaviour: String = config::get("behaviour")?.unwrap_or_else(|| "ok".to_owned());
        let reason = match behaviour.as_str() {
            "ok" => "ok".to_owned(),
            "loop" => spin(),
            "grow-memory" => grow_memory(),
            "recurse" => format!("recurse: {}", recurse(0)),
            "huge-output" => "x".repeat(8 * MIB),
            "huge-notifications" => return Ok(huge_notifications(&ticket)),
            "open-file" => open_file(),
            "write-private" => write_private(),
            "open-socket" => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => "open-socket: allowed".to_owned(),
                Err(error) => format!("open-socket: denied: {error}"),
            },
            "peek-other-dealer" => {
                let id: i64 =
                    config::get("customer_id")?.ok_or("config `customer_id` is not set")?;
                match records::customer(id) {
                    Ok(customer) => format!("peek: found {}", customer.name),
                    Err(error) => format!("peek: {}", variant(&error)),
                }
            }
            "outbound" => send_outbound()?,
            "panic" => panic!("guest-hostile panics as configured"),
            "store" => count_in_store(),
            "emit" => emit(&ticket),
            "env" => format!(
                "env: vars={} args={}",
                std::env::vars().count(),
                std::env::args().count()
            ),
            "clock" => format!("clock: {} {}", clock::now(), clock::today()),
            "sleep" => {
                let ms = config::get("ms")?.unwrap_or(15_000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                format!("sleep: woke after {ms} ms")
            }
            "poll" => poll(config::get("ms")?.unwrap_or(15_000)),
            other => return Err(format!("unknown behaviour {other:?}")),
        };
        Ok(normal_route(&ticket, reason))
    }
}

dealer_sdk::export_ticket_routing!(Hostile);

fn normal_route(ticket: &Ticket, reason: String) -> Route {
    Route {
        priority: Priority::Normal,
        team: "service".to_owned(),
        safety: false,
        first_contact_due: ticket.opened_at.saturating_add(30 * MINUTE),
        resolution_due: ticket.opened_at.saturating_add(24 * HOUR),
        notifications: Vec::new(),
        reason,
    }
}

/// Counts forever; `black_box` keeps the compiler from proving the loop useless.
fn spin() -> ! {
    let mut count: u64 = 0;
    loop {
        count = black_box(count.wrapping_add(1));
    }
}

/// Keeps allocating 1 MiB blocks and writing to every page of each.
fn grow_memory() -> ! {
    let mut hoard = Vec::new();
    loop {
        let mut block = vec![0u8; MIB];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        hoard.push(black_box(block));
    }
}

/// Recurses until the stack runs out; the work after the call keeps it from becoming a loop.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    black_box(recurse(depth + 1)).wrapping_add(1)
}

fn huge_notifications(ticket: &Ticket) -> Route {
    let notification = Notification {
        channel: "app".to_owned(),
        recipient: format!("customer:{}", ticket.customer_id),
        template: "hostile".to_owned(),
        data: Vec::new(),
    };
    Route {
        notifications: vec![notification; 100_000],
        ..normal_route(ticket, "huge-notifications".to_owned())
    }
}

/// Reads `/etc/passwd`, which no grant opens; also reports writing `/data/probe.txt`, which
/// the private directory grant allows.
fn open_file() -> String {
    match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!(
            "open-file: allowed: {}",
            text.chars().take(20).collect::<String>()
        ),
        Err(read_error) => {
            let written = match std::fs::write("/data/probe.txt", "probe") {
                Ok(()) => "ok".to_owned(),
                Err(write_error) => write_error.to_string(),
            };
            format!(
                "open-file: denied: read /etc/passwd: {read_error}; \
                 write /data/probe.txt: {written}"
            )
        }
    }
}

fn write_private() -> String {
    let path = "/data/note.txt";
    match std::fs::write(path, NOTE).and_then(|()| std::fs::read_to_string(path)) {
        Ok(content) => format!("write-private: ok: {content}"),
        Err(error) => format!("write-private: denied: {error}"),
    }
}

fn send_outbound() -> Result<String, String> {
    let url: String = config::get("url")?.ok_or("config `url` is not set")?;
    let mut request = Request::get(url);
    if let Some(handle) = config::get::<String>("credential")? {
        request = request.bearer(handle);
    }
    Ok(match outbound::send(&request) {
        Ok(response) => format!("outbound: {} {}", response.status, response.text()),
        Err(error) => format!("outbound: error: {}", variant(&error)),
    })
}

fn count_in_store() -> String {
    let count = store::get("count")
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    match store::set("count", count.to_string().as_bytes()) {
        Ok(()) => format!("store: {count}"),
        Err(error) => format!("store: error: {}", variant(&error)),
    }
}

fn emit(ticket: &Ticket) -> String {
    let payload = format!("{{\"ticket_id\":{}}}", ticket.ticket_id);
    let notification = Notification {
        channel: "app".to_owned(),
        recipient: format!("customer:{}", ticket.customer_id),
        template: "hostile-emit".to_owned(),
        data: vec![("ticket-id".to_owned(), ticket.ticket_id.to_string())],
    };
    match events::emit("hostile-emitted", &payload).and_then(|()| events::notify(&notification)) {
        Ok(()) => "ok".to_owned(),
        Err(error) => format!("emit: error: {}", variant(&error)),
    }
}

/// `wasi:io/poll` and the monotonic clock's subscriptions, which `std` reaches only through
/// `thread::sleep`.
mod wasi {
    wit_bindgen::generate!({
        inline: r"
            package guest:hostile;

            world poller {
                import wasi:io/poll@0.2.4;
                import wasi:clocks/monotonic-clock@0.2.4;
            }

            package wasi:io@0.2.4 {
                interface poll {
                    resource pollable {
                        ready: func() -> bool;
                        block: func();
                    }
                    poll: func(in: list<borrow<pollable>>) -> list<u32>;
                }
            }

            package wasi:clocks@0.2.4 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.4.{pollable};
                    type instant = u64;
                    type duration = u64;
                    now: func() -> instant;
                    resolution: func() -> duration;
                    subscribe-instant: func(when: instant) -> pollable;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }
        ",
        world: "guest:hostile/poller",
        generate_all,
    });
}

/// Polls, in a loop, a list of two subscriptions `ms` ahead: an instant (the monotonic clock
/// reads a frozen 0, so the instant `ms` is `ms` from now) and a duration. Counts `ms` as
/// passed only once both fired, since the clock cannot tell.
fn poll(ms: u64) -> String {
    use wasi::wasi::clocks::monotonic_clock;
    use wasi::wasi::io::poll;
    let nanos = ms.saturating_mul(1_000_000);
    let instant = monotonic_clock::subscribe_instant(monotonic_clock::now().saturating_add(nanos));
    let duration = monotonic_clock::subscribe_duration(nanos);
    let mut polls = 0;
    while !(instant.ready() && duration.ready()) {
        poll::poll(&[&instant, &duration]);
        polls += 1;
    }
    format!("poll: {ms} ms passed after {polls} polls")
}

/// The error as `#[derive(Debug)]` prints a variant (`NotFound`, `Denied("...")`), without the
/// type name that the generated `Debug` puts first.
fn variant(error: &HostError) -> String {
    let debug = format!("{error:?}");
    debug
        .strip_prefix("HostError::")
        .map_or_else(|| debug.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_read_like_derived_debug() {
        assert_eq!(variant(&HostError::NotFound), "NotFound");
        assert_eq!(
            variant(&HostError::Denied("not allowlisted".to_owned())),
            "Denied(\"not allowlisted\")"
        );
    }
}
