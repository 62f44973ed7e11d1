//! A local stand-in of a partner's API for fixtures: it answers the exchanges a fixture
//! declares and reports every request that was not declared, and every declared one that
//! never came.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::{HeaderMap, Method, StatusCode, Uri};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;

/// One request the plugin is expected to make, and the partner's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub request: ExpectedRequest,
    pub response: CannedResponse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRequest {
    pub method: String,
    pub path: String,
    /// Headers the request must carry, names in any case.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body the request must carry.
    pub json: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    #[serde(default = "ok")]
    pub status: u16,
    /// A JSON body; `text` for anything else.
    pub json: Option<Value>,
    pub text: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Default)]
struct Script {
    pending: Vec<Exchange>,
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Script>>;

/// A running stand-in; it stops when dropped.
pub struct StandIn {
    /// `127.0.0.1:<port>`, what `{partner}` in a fixture becomes.
    pub authority: String,
    script: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Binds a local port and serves from it.
    pub async fn start() -> Result<StandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a local port for the partner stand-in")?;
        let authority = listener.local_addr()?.to_string();
        let script = Shared::default();
        let shared = script.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = shared.clone();
                let service = service_fn(move |request| serve(script.clone(), request));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(StandIn {
            authority,
            script,
            server,
        })
    }

    /// The exchanges to answer, in any order.
    pub fn expect(&self, exchanges: Vec<Exchange>) {
        self.script.lock().expect("the stand-in's script").pending = exchanges;
    }

    /// What went differently from the script: unexpected requests, wrong headers or bodies,
    /// and declared requests that never came.
    pub fn problems(&self) -> Vec<String> {
        let script = self.script.lock().expect("the stand-in's script");
        let mut problems = script.problems.clone();
        problems.extend(script.pending.iter().map(|e| {
            format!(
                "the plugin never sent {} {}",
                e.request.method, e.request.path
            )
        }));
        problems
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Answers one request from the script.
async fn serve(
    script: Shared,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let (status, text) = answer(&script, &parts.method, &parts.uri, &parts.headers, &body);
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

fn answer(
    script: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String) {
    let mut script = script.lock().expect("the stand-in's script");
    let position = script.pending.iter().position(|e| {
        e.request.method.eq_ignore_ascii_case(method.as_str()) && e.request.path == uri.path()
    });
    let Some(position) = position else {
        let problem = format!(
            "the plugin sent {method} {}, which the fixture does not declare",
            uri.path()
        );
        script.problems.push(problem.clone());
        return (StatusCode::NOT_FOUND, problem);
    };
    let exchange = script.pending.remove(position);
    let request = &exchange.request;
    for (name, value) in &request.headers {
        let sent = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        if sent != Some(value.as_str()) {
            script.problems.push(format!(
                "{method} {}: header `{name}` was {sent:?}, the fixture expects {value:?}",
                uri.path()
            ));
        }
    }
    if let Some(expected) = &request.json {
        match serde_json::from_slice::<Value>(body) {
            Ok(sent) if &sent == expected => {}
            Ok(sent) => script.problems.push(format!(
                "{method} {}: the body was {sent}, the fixture expects {expected}",
                uri.path()
            )),
            Err(e) => script.problems.push(format!(
                "{method} {}: the body is not JSON ({e}), the fixture expects {expected}",
                uri.path()
            )),
        }
    }
    let response = &exchange.response;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let text = match (&response.json, &response.text) {
        (Some(json), _) => json.to_string(),
        (None, Some(text)) => text.clone(),
        (None, None) => String::new(),
    };
    (status, text)
}
