//! The console: the web app staff and HQ use, built by `npm run build` in `console/` and
//! embedded in the binary (`build.rs`), or read from a directory given to `serve
//! --console-dir` (a console being developed, without rebuilding the host). Served at `/` with
//! a history fallback: any GET outside `/api` and `/docs` that names no file gets
//! `index.html`, and the app's router takes it from there. Hashed assets (`/assets/…`) are
//! cached for a year; `index.html` never is, so a new release is picked up on the next load.

use std::borrow::Cow;
use std::path::{Component, Path};

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::error::Error;

/// (path under `dist/`, contents), sorted by path.
static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The file at `path` (relative, `/`-separated) of the console's build.
async fn file(state: &AppState, path: &str) -> Option<Cow<'static, [u8]>> {
    match &state.console_dir {
        Some(dir) => {
            let relative = Path::new(path);
            let plain = relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return None;
            }
            tokio::fs::read(dir.join(relative))
                .await
                .ok()
                .map(Cow::Owned)
        }
        None => EMBEDDED
            .binary_search_by(|(p, _)| (*p).cmp(path))
            .ok()
            .map(|i| Cow::Borrowed(EMBEDDED[i].1)),
    }
}

/// The fallback of every route the API does not know: a file of the console, or its
/// `index.html` for the app's own routes.
pub async fn serve(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return Error::MethodNotAllowed.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty()
        && path != "index.html"
        && let Some(body) = file(&state, path).await
    {
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return answer(body, media_type(path), cache);
    }
    let names_file = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    if names_file && path != "index.html" {
        return Error::NotFound { entity: "file" }.into_response();
    }
    match file(&state, "index.html").await {
        Some(body) => answer(body, media_type("index.html"), "no-cache"),
        None => Html(include_str!("home.html")).into_response(),
    }
}

fn answer(body: Cow<'static, [u8]>, media_type: &'static str, cache: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
