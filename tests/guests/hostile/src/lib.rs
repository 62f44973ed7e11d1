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
//! | `wasi-http` | the same through `wasi:http/outgoing-handler`, the handle in `x-dealer-credential` |
//! | `panic` | panics |
//! | `store` | increments the store's `count` |
//! | `emit` | emits an event and a notification, then routes as `ok` |
//! | `env` | counts its environment variables and arguments |
//! | `clock` | reports the host clock |
//! | `emit-flood` | emits one event whose payload is a JSON array of config `mib` MiB (default 24) |
//! | `log-flood` | logs 190 lines of 1 MiB each, then routes as `log-flood: 190 lines` |
//! | `store-flood` | stores 1000 values of 64 KiB (the most a value holds) under keys of their own, reports how many were stored and refused |
//! | `outbound-flood` | POSTs a body of config `mib` MiB (default 24) to config `url` |
//! | `notify-flood` | sends 100 notifications with 32 data entries of 2000 bytes each (the most one may hold) |
//! | `lookup-flood` | looks up the customer of config `customer_id` 10 000 times, reports the answers by kind |
//! | `sleep` | `std::thread::sleep`s config `ms` (default 15 000) milliseconds |
//! | `poll` | polls a list of monotonic-clock subscriptions (an instant and a duration `ms` ahead, default 15 000) until `ms` have passed by its own count |
//! | `sign` | signs config `data` (default `probe`) with the handle of config `credential` by HMAC-SHA1 and HMAC-SHA256, reports both in hex (or the host's refusal) |
//! | `sign-flood` | signs 100 times, reports how many were signed and refused |

use std::hint::black_box;

use dealer_sdk::dates::{HOUR, MINUTE};
use dealer_sdk::outbound::{self, Request};
use dealer_sdk::ticket_routing::{Guest, Notification, Priority, Route, Ticket};
use dealer_sdk::types::HostError;
use dealer_sdk::{clock, config, events, log, records, signing, store};

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
            "wasi-http" => send_wasi_http()?,
            "panic" => panic!("guest-hostile panics as configured"),
            "store" => count_in_store(),
            "emit" => emit(&ticket),
            "env" => format!(
                "env: vars={} args={}",
                std::env::vars().count(),
                std::env::args().count()
            ),
            "clock" => format!("clock: {} {}", clock::now(), clock::today()),
            "emit-flood" => emit_flood()?,
            "log-flood" => {
                let line = "x".repeat(MIB);
                for _ in 0..190 {
                    log::info(&line);
                }
                "log-flood: 190 lines".to_owned()
            }
            "store-flood" => store_flood(),
            "outbound-flood" => outbound_flood()?,
            "notify-flood" => notify_flood(&ticket),
            "lookup-flood" => lookup_flood()?,
            "sleep" => {
                let ms = config::get("ms")?.unwrap_or(15_000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                format!("sleep: woke after {ms} ms")
            }
            "poll" => poll(config::get("ms")?.unwrap_or(15_000)),
            "sign" => sign()?,
            "sign-flood" => sign_flood(),
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

/// What `outbound` does, through the WASI HTTP client any language's toolchain links.
fn send_wasi_http() -> Result<String, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    let url: String = config::get("url")?.ok_or("config `url` is not set")?;
    let (scheme, rest) = url.split_once("://").ok_or("config `url` has no scheme")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let headers = Fields::new();
    if let Some(handle) = config::get::<String>("credential")? {
        headers
            .append("x-dealer-credential", handle.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(&path)))
        .map_err(|()| format!("`{url}` is not a request this client can make"))?;
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return Ok(format!("wasi-http: error: {code:?}")),
    };
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Ok(format!("wasi-http: error: {code:?}")),
        other => return Err(format!("the response future answered {other:?}")),
    };
    let status = response.status();
    let body = response.consume().map_err(|()| "the body was taken")?;
    let stream = body.stream().map_err(|()| "the body's stream was taken")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Ok(format!("wasi-http: error: {}", error.to_debug_string()));
            }
        }
    }
    Ok(format!(
        "wasi-http: {status} {}",
        String::from_utf8_lossy(&bytes)
    ))
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

/// Config `mib` (default 24) in bytes.
fn flood_bytes() -> Result<usize, String> {
    Ok(config::get::<usize>("mib")?.unwrap_or(24) * MIB)
}

fn emit_flood() -> Result<String, String> {
    let bytes = flood_bytes()?;
    let mut payload = String::with_capacity(bytes);
    payload.push('[');
    while payload.len() + 3 < bytes {
        payload.push_str("0,");
    }
    payload.push_str("0]");
    Ok(match events::emit("hostile-flood", &payload) {
        Ok(()) => "emit-flood: emitted".to_owned(),
        Err(error) => format!("emit-flood: error: {}", variant(&error)),
    })
}

fn store_flood() -> String {
    let value = vec![b'v'; 64 << 10];
    let (mut stored, mut refused) = (0, 0);
    for i in 0..1000 {
        match store::set(&format!("flood-{i}"), &value) {
            Ok(()) => stored += 1,
            Err(_) => refused += 1,
        }
    }
    format!("store-flood: {stored} stored, {refused} refused")
}

fn outbound_flood() -> Result<String, String> {
    let url: String = config::get("url")?.ok_or("config `url` is not set")?;
    let request = Request::post(url, vec![b'b'; flood_bytes()?]);
    Ok(match outbound::send(&request) {
        Ok(response) => format!("outbound-flood: {}", response.status),
        Err(error) => format!("outbound-flood: error: {}", variant(&error)),
    })
}

fn notify_flood(ticket: &Ticket) -> String {
    let notification = Notification {
        channel: "app".to_owned(),
        recipient: format!("customer:{}", ticket.customer_id),
        template: "hostile-flood".to_owned(),
        data: (0..32)
            .map(|i| (format!("{i:0>64}"), "d".repeat(2000)))
            .collect(),
    };
    let mut sent = 0;
    for _ in 0..100 {
        if let Err(error) = events::notify(&notification) {
            return format!("notify-flood: {sent} sent, then {}", variant(&error));
        }
        sent += 1;
    }
    format!("notify-flood: {sent} sent")
}

fn lookup_flood() -> Result<String, String> {
    let id: i64 = config::get("customer_id")?.ok_or("config `customer_id` is not set")?;
    let mut answers = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..10_000 {
        let answer = match records::customer(id) {
            Ok(_) => "found".to_owned(),
            Err(error) => variant(&error)
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        *answers.entry(answer).or_default() += 1;
    }
    let answers: Vec<String> = answers.iter().map(|(k, n)| format!("{k}={n}")).collect();
    Ok(format!("lookup-flood: {}", answers.join(" ")))
}

/// Polls `wasi:io/poll` (which `std` reaches only through `thread::sleep`) in a loop, on a
/// list of two subscriptions `ms` ahead: an instant (the monotonic clock reads a frozen 0, so
/// the instant `ms` is `ms` from now) and a duration. Counts `ms` as passed only once both
/// fired, since the clock cannot tell.
fn poll(ms: u64) -> String {
    use wasip2::clocks::monotonic_clock;
    use wasip2::io::poll;
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
/// Both signatures of config `data` under the handle of config `credential`, in hex.
fn sign() -> Result<String, String> {
    let handle: String = config::get("credential")?.unwrap_or_default();
    let data: String = config::get("data")?.unwrap_or_else(|| "probe".to_owned());
    let shown = |signed: Result<Vec<u8>, HostError>| match signed {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(error) => variant(&error),
    };
    Ok(format!(
        "sign: sha1={} sha256={}",
        shown(signing::hmac_sha1(&handle, data.as_bytes())),
        shown(signing::hmac_sha256(&handle, data.as_bytes()))
    ))
}

/// Signs 100 times with the handle of config `credential`.
fn sign_flood() -> String {
    let handle: String = config::get("credential").ok().flatten().unwrap_or_default();
    let (mut signed, mut refused) = (0, 0);
    for _ in 0..100 {
        match signing::hmac_sha256(&handle, b"flood") {
            Ok(_) => signed += 1,
            Err(_) => refused += 1,
        }
    }
    format!("sign-flood: {signed} signed, {refused} refused")
}

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
