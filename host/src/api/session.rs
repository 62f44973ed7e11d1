//! Sign-in for the console: a session in an `HttpOnly` cookie, its CSRF token for writes, and
//! the logins dealer admins and HQ give their staff.
//!
//! The cookie is `dealer_session` (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` over TLS).
//! A request with a session cookie and no API key is that staff member's, with the same role,
//! position and scope as their keys; a write (any method but GET, HEAD and OPTIONS) must also
//! send the session's `X-CSRF-Token`, which a page of another site cannot read.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use crate::access::logins::{self, SessionCaller, StaffLogin};
use crate::access::{Caller, Permission, Position, Role};
use crate::audit::Actor;
use crate::clock;
use crate::error::{Error, Result};
use crate::network::{self, LoginChange};

/// The session cookie's name.
pub const COOKIE: &str = "dealer_session";
/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, current, sign_out))
        .routes(routes!(change_password))
        .routes(routes!(get_login, set_login, disable_login))
}

/// The network address of the client, for throttling failed sign-ins.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The login's username, or the staff member's mobile number.
    pub username: String,
    pub password: String,
}

/// Who is signed in, and what the console may show them.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub staff_id: i64,
    pub name: String,
    pub username: String,
    pub role: Role,
    pub position: Option<Position>,
    pub org_unit_id: i64,
    pub org_unit_name: String,
    pub org_kind: String,
    /// The permissions the role holds (`read_records`, `manage_plugins`, …).
    pub permissions: Vec<&'static str>,
}

/// A session: send `csrf_token` as `X-CSRF-Token` with every write.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub me: Me,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// A login given to a staff member: a username and, to set or reset it, a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// 3 to 64 letters, digits, dots, dashes or underscores (stored lower-case).
    pub username: String,
    /// 8 to 128 characters; leave it out to keep the current one. A new password ends the
    /// login's sessions.
    pub password: Option<String>,
}

/// The session token a request's cookie carries, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The caller of a request that came with a session cookie; a write must carry the CSRF
/// token ([`CSRF_HEADER`]).
pub async fn caller_of_cookie(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<SessionCaller> {
    let mut conn = state.db.pool().acquire().await?;
    let session = logins::authenticate(&mut conn, token).await?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !same_secret(sent, session.csrf_token.as_bytes()) {
            return Err(Error::CsrfRejected);
        }
    }
    Ok(session)
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request's session: its token and its caller.
pub struct Session {
    token: String,
    signed_in: SessionCaller,
}

impl axum::extract::FromRequestParts<AppState> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = cookie_token(&parts.headers)
            .ok_or(Error::Unauthenticated("you are not signed in"))?
            .to_owned();
        let signed_in = caller_of_cookie(parts, state, &token).await?;
        Ok(Session { token, signed_in })
    }
}

impl axum::extract::FromRequestParts<AppState> for Peer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|info| info.0)
            .unwrap_or(Peer(std::net::SocketAddr::from(([0, 0, 0, 0], 0))));
        Ok(peer)
    }
}

async fn me(state: &AppState, signed_in: &SessionCaller) -> Result<Me> {
    let caller = &signed_in.caller;
    let staff_id = caller.staff_id.unwrap_or_default();
    let mut conn = state.db.pool().acquire().await?;
    let staff = network::staff_member(&mut conn, staff_id).await?;
    let username = logins::find(&mut conn, staff_id)
        .await?
        .map(|login| login.username)
        .unwrap_or_default();
    Ok(Me {
        staff_id,
        name: staff.name,
        username,
        role: caller.role,
        position: caller.position,
        org_unit_id: caller.org_id,
        org_unit_name: network::unit_name(&mut conn, caller.org_id).await?,
        org_kind: caller.org_kind.clone(),
        permissions: caller.permissions(),
    })
}

async fn info(state: &AppState, signed_in: &SessionCaller) -> Result<SessionInfo> {
    Ok(SessionInfo {
        csrf_token: signed_in.csrf_token.clone(),
        expires_at: clock::to_datetime(signed_in.expires_at),
        me: me(state, signed_in).await?,
    })
}

fn set_cookie(state: &AppState, value: &str, max_age_seconds: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("a session token is a valid header value")
}

/// Signs in with a username (or mobile number) and password. The answer sets the session
/// cookie and holds the CSRF token for writes. After 5 wrong passwords in a row the login is
/// locked for 15 minutes (429 `login_locked`, with `Retry-After`); so is an address after 20.
#[utoipa::path(post, path = "/session", tag = "session", request_body = SignIn, security(()),
    responses((status = 201, body = SessionInfo),
        (status = 401, description = "`login_failed`: the username or the password is wrong", body = super::problem::Problem),
        (status = 429, description = "`login_locked`: too many wrong passwords", body = super::problem::Problem)))]
async fn sign_in(
    State(state): State<AppState>,
    peer: Peer,
    Json(request): Json<SignIn>,
) -> Result<Response> {
    let address = peer.0.ip().to_string();
    let (session, signed_in) =
        network::sign_in(&state.db, &request.username, &request.password, &address).await?;
    let body = info(&state, &signed_in).await?;
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let max_age = (session.expires_at - clock::now_ms()) / 1000;
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, &session.token, max_age),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The session of the cookie sent: who is signed in, and the CSRF token (so a reloaded page
/// gets it back).
#[utoipa::path(get, path = "/session", tag = "session", responses((status = 200, body = SessionInfo)))]
async fn current(State(state): State<AppState>, session: Session) -> Result<Response> {
    let body = info(&state, &session.signed_in).await?;
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signs out: the session ends at once (its cookie is refused from then on) and is cleared.
#[utoipa::path(delete, path = "/session", tag = "session", responses((status = 204)))]
async fn sign_out(State(state): State<AppState>, session: Session) -> Result<Response> {
    let mut conn = state.db.pool().acquire().await?;
    logins::sign_out(&mut conn, &session.token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, "", 0));
    Ok(response)
}

/// Changes the signed-in person's password; their other sessions end, this one goes on.
#[utoipa::path(put, path = "/session/password", tag = "session", request_body = PasswordChange,
    responses((status = 204)))]
async fn change_password(
    State(state): State<AppState>,
    session: Session,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode> {
    network::change_own_password(
        &state.db,
        &session.signed_in,
        &change.current_password,
        &change.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A staff member's login (HQ or dealer admin, for staff in their scope); 404 when they have
/// none.
#[utoipa::path(get, path = "/staff/{id}/login", tag = "network", params(("id" = i64, Path)),
    responses((status = 200, body = StaffLogin)))]
async fn get_login(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<StaffLogin>> {
    caller.require(Permission::ManageKeys)?;
    let mut conn = state.db.pool().acquire().await?;
    network::login_of(&mut conn, &caller, id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound { entity: "login" })
}

/// Gives a staff member in the caller's scope a login, or changes its username or password
/// (HQ or dealer admin). A new password unlocks the login and ends its sessions.
#[utoipa::path(put, path = "/staff/{id}/login", tag = "network", params(("id" = i64, Path)),
    request_body = LoginRequest, responses((status = 200, body = StaffLogin)))]
async fn set_login(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<StaffLogin>> {
    caller.require(Permission::ManageKeys)?;
    let change = LoginChange::new(&request.username, request.password.as_deref()).await?;
    let mut tx = state.db.begin_write().await?;
    let login = network::set_login(&mut tx, Actor::Staff(&caller), id, &change).await?;
    tx.commit().await?;
    Ok(Json(login))
}

/// Disables a staff member's login (HQ or dealer admin): their sessions end at once.
#[utoipa::path(delete, path = "/staff/{id}/login", tag = "network", params(("id" = i64, Path)),
    responses((status = 200, body = StaffLogin)))]
async fn disable_login(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<StaffLogin>> {
    caller.require(Permission::ManageKeys)?;
    let mut tx = state.db.begin_write().await?;
    let login = network::disable_login(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(login))
}
