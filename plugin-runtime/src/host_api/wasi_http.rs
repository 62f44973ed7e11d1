//! `wasi:http/outgoing-handler`, for components whose language reaches partners with its
//! ordinary HTTP client (JavaScript's `fetch`, Python's `urllib` through componentize-py's
//! shims, Rust's `wstd`), held to the same rules as the platform's own `outbound` interface:
//!
//! - only hosts on the plugin's outbound allowlist, only `http` and `https`, never during a
//!   replay;
//! - at most [`MAX_CALLS`] requests a run;
//! - secrets never enter the guest: the plugin names a credential handle in the
//!   [`CREDENTIAL_HEADER`] header (and optionally where it goes in [`PLACEMENT_HEADER`]); the
//!   host removes both and adds the dealer's secret (`Authorization: Bearer …` by default). The
//!   guest may not set `Authorization` itself;
//! - the run's deadline bounds the connection, the wait for the answer and every read of its
//!   body, and the body is cut at [`MAX_RESPONSE_BYTES`];
//! - every request is logged (method, URL without its query, credential handle, status,
//!   duration) and kept in the run's effects, never with the secret.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, RequestOptions, WasiBody, WasiHttpHooks, default_send_request,
};

use super::{Mode, OutboundCall, PluginData, method_name};
use crate::Grants;

/// The request header in which a plugin names the credential handle the host should attach.
pub const CREDENTIAL_HEADER: &str = "x-dealer-credential";
/// Where the credential goes instead of `Authorization: Bearer …`: a header name such as
/// `X-Api-Key`.
pub const PLACEMENT_HEADER: &str = "x-dealer-credential-header";
/// `wasi:http` requests a run may make (besides those of the `outbound` interface).
pub const MAX_CALLS: usize = 16;
/// The largest response body a plugin receives.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// The host's side of one run's `wasi:http` requests.
pub struct HttpGate {
    grants: Grants,
    mode: Mode,
    plugin: String,
    dealer_id: i64,
    deadline: Instant,
    data: Option<(Arc<dyn PluginData>, tokio::runtime::Handle)>,
    /// Requests made, completed as their answers arrive (on the WASI runtime's threads).
    calls: Arc<Mutex<Vec<OutboundCall>>>,
}

impl HttpGate {
    pub fn new(
        grants: Grants,
        mode: Mode,
        plugin: String,
        dealer_id: i64,
        deadline: Instant,
        data: Option<(Arc<dyn PluginData>, tokio::runtime::Handle)>,
    ) -> HttpGate {
        HttpGate {
            grants,
            mode,
            plugin,
            dealer_id,
            deadline,
            data,
            calls: Arc::default(),
        }
    }

    /// The requests the run made, for its effects.
    pub fn into_calls(self) -> Vec<OutboundCall> {
        std::mem::take(&mut *self.calls.lock().expect("http calls lock"))
    }

    /// Checks a request against the plugin's grants and puts the credential it names in
    /// place; the error is what the guest receives.
    fn admit(&self, request: &mut http::Request<WasiBody>) -> Result<Option<String>, Error> {
        if self.mode == Mode::Replay {
            return Err(Error::HttpRequestDenied);
        }
        if self.calls.lock().expect("http calls lock").len() >= MAX_CALLS {
            return Err(Error::ConnectionLimitReached);
        }
        let uri = request.uri();
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(Error::HttpProtocolError);
        }
        let host = uri.host().unwrap_or_default();
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let allowed = self
            .grants
            .outbound_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(authority));
        if !allowed {
            return Err(Error::HttpRequestDenied);
        }
        let headers = request.headers_mut();
        let handle = headers
            .remove(CREDENTIAL_HEADER)
            .map(|value| value.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| Error::HttpRequestDenied)?;
        let placement = headers.remove(PLACEMENT_HEADER);
        let Some(handle) = handle else {
            return Ok(None);
        };
        let secret = self.secret(&handle)?;
        let mut value = HeaderValue::try_from(secret).map_err(|_| Error::HttpRequestDenied)?;
        value.set_sensitive(true);
        match placement {
            None => {
                let mut bearer = HeaderValue::try_from(format!(
                    "Bearer {}",
                    value.to_str().map_err(|_| Error::HttpRequestDenied)?
                ))
                .map_err(|_| Error::HttpRequestDenied)?;
                bearer.set_sensitive(true);
                headers.insert(AUTHORIZATION, bearer);
            }
            Some(name) => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::HttpRequestDenied)?;
                headers.insert(name, value);
            }
        }
        Ok(Some(handle))
    }

    /// The dealer's secret behind a handle the plugin was granted.
    fn secret(&self, handle: &str) -> Result<String, Error> {
        if !self.grants.credentials.iter().any(|h| h == handle) {
            return Err(Error::HttpRequestDenied);
        }
        let (data, tokio) = self.data.as_ref().ok_or(Error::HttpRequestDenied)?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        tokio
            .block_on(async {
                tokio::time::timeout(remaining, data.secret(handle.to_owned())).await
            })
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|_| Error::InternalError(Some("the credential could not be read".into())))?
            .ok_or(Error::HttpRequestDenied)
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for HttpGate {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        *name == AUTHORIZATION || DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        Arc::new(|name| *name == AUTHORIZATION || DEFAULT_FORBIDDEN_HEADERS.contains(name))
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        let started = Instant::now();
        let admitted = self.admit(&mut request);
        let uri = request.uri();
        let call = OutboundCall {
            method: method_name(request.method()),
            url: format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or_default(),
                uri.authority().map(|a| a.as_str()).unwrap_or_default(),
                uri.path()
            ),
            credential: admitted.as_ref().ok().cloned().flatten(),
            status: None,
            error: admitted.as_ref().err().map(ToString::to_string),
            duration_ms: 0,
        };
        let (plugin, dealer) = (self.plugin.clone(), self.dealer_id);
        let deadline = self.deadline;
        let calls = self.calls.clone();
        let index = {
            let mut calls = calls.lock().expect("http calls lock");
            calls.push(call);
            calls.len() - 1
        };
        Box::new(async move {
            let result = match admitted {
                Ok(_) => send_before(request, options, deadline).await,
                Err(error) => Err(error),
            };
            let mut calls = calls.lock().expect("http calls lock");
            let call = &mut calls[index];
            call.duration_ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok((response, _)) => call.status = Some(response.status().as_u16()),
                Err(error) => call.error = Some(error.to_string()),
            }
            call.log(&plugin, dealer, "wasi:http");
            result
        })
    }
}

/// Sends `request` with every timeout cut to what is left of the run, and bounds the answer's
/// body by the deadline and [`MAX_RESPONSE_BYTES`].
async fn send_before(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    deadline: Instant,
) -> Result<(http::Response<WasiBody>, Sent), Error> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Error::ConnectionTimeout);
    }
    let cut = |guest: Option<Duration>| Some(guest.map_or(remaining, |g| g.min(remaining)));
    let options = options.unwrap_or_default();
    let options = RequestOptions {
        connect_timeout: cut(options.connect_timeout),
        first_byte_timeout: cut(options.first_byte_timeout),
        between_bytes_timeout: cut(options.between_bytes_timeout),
    };
    let sent = tokio::time::timeout(remaining, default_send_request(request, Some(options)));
    let (response, io) = sent.await.map_err(|_| Error::HttpResponseTimeout)??;
    let response = response.map(|body| {
        BoundedBody {
            inner: body.boxed_unsync(),
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
            received: 0,
        }
        .boxed_unsync()
    });
    Ok((response, Box::new(io) as Sent))
}

/// A response body that ends in an error at the run's deadline or past
/// [`MAX_RESPONSE_BYTES`].
struct BoundedBody {
    inner: WasiBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    received: u64,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame
            && let Some(data) = frame.data_ref()
        {
            self.received += data.len() as u64;
            if self.received > MAX_RESPONSE_BYTES {
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                    MAX_RESPONSE_BYTES,
                )))));
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
