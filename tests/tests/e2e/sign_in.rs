//! Staff sign-in for the console: logins given by admins, sessions in a cookie with the same
//! role and scope as a key, CSRF on writes, lock-out after wrong passwords, logout and password
//! changes ending sessions; and the console itself served at `/` with a history fallback.

use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_staff_member_signs_in_and_acts_with_their_role_and_scope,
    a_write_with_the_session_cookie_needs_its_csrf_token,
    signing_out_ends_the_session,
    five_wrong_passwords_lock_the_login_until_a_new_password,
    a_dealer_admin_gives_logins_to_their_own_staff_only,
    a_password_change_ends_the_other_sessions,
    a_disabled_login_cannot_sign_in_and_its_sessions_end,
    the_console_is_served_with_a_history_fallback,
);

const PASSWORD: &str = "春天的车-2026";

/// A signed-in browser: its cookie and the session's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base)
}

async fn sign_in_reply(app: &TestApp, username: &str, password: &str) -> Reply {
    call(
        app.client
            .post(url(app, "/session"))
            .json(&json!({"username": username, "password": password})),
    )
    .await
}

async fn sign_in(app: &TestApp, username: &str, password: &str) -> Browser {
    let reply = sign_in_reply(app, username, password).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let set_cookie = reply.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP: no Secure flag, {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Browser {
        cookie,
        csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Browser {
    fn get(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        app.client
            .get(url(app, path))
            .header("cookie", &self.cookie)
    }

    /// A write as the console sends it: the cookie and the CSRF token.
    fn send(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let request = app
            .client
            .request(method, url(app, path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        match body {
            Some(body) => request.json(body),
            None => request,
        }
    }
}

/// Gives staff member `staff_id` a login as `admin_key`.
async fn give_login(app: &TestApp, admin_key: &str, staff_id: i64, username: &str) -> Value {
    let reply = call(app.put(
        admin_key,
        &format!("/staff/{staff_id}/login"),
        &json!({"username": username, "password": PASSWORD}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

async fn customer_of(app: &TestApp, key: &str, name: &str, phone: &str) -> i64 {
    app.create(
        key,
        "/customers",
        &json!({"name": name, "phones": [{"number": phone}], "tags": []}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn a_staff_member_signs_in_and_acts_with_their_role_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = give_login(&app, &app.keys.a_admin, app.staff.a_sales, "Zhang.Wei").await;
    assert_eq!(login["username"], "zhang.wei", "stored lower-case: {login}");
    assert_eq!(login["has_password"], true);
    let own = customer_of(&app, &app.keys.a_sales, "王芳", "13900001111").await;
    let other = customer_of(&app, &app.keys.b_admin, "李雷", "13900002222").await;

    let browser = sign_in(&app, "zhang.wei", PASSWORD).await;
    let session = call(browser.get(&app, "/session")).await;
    assert_eq!(session.status, 200, "{}", session.text);
    let me = &session.body["me"];
    assert_eq!(me["staff_id"], app.staff.a_sales);
    assert_eq!(me["role"], "sales");
    assert_eq!(me["position"], "sales_consultant");
    assert_eq!(me["org_unit_id"], app.units.dealer_a);
    assert_eq!(me["org_unit_name"], "北京朝阳4S店");
    let permissions = me["permissions"].as_array().unwrap();
    assert!(permissions.contains(&json!("write_records")), "{me}");
    assert!(!permissions.contains(&json!("manage_plugins")), "{me}");
    assert_eq!(session.body["csrf_token"], browser.csrf);

    let read = call(browser.get(&app, &format!("/customers/{own}"))).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["name"], "王芳");
    let foreign = call(browser.get(&app, &format!("/customers/{other}"))).await;
    assert_eq!(
        foreign.status, 404,
        "another dealer's customer: {}",
        foreign.text
    );
    let plugins = call(browser.get(&app, "/plugins")).await;
    assert_eq!(plugins.status, 403, "a sales consultant manages no plugins");

    // The session acts through the login's own key: the audit log names it, as a key's
    // acts are named.
    let audit = app
        .read(
            &app.keys.a_admin,
            "/audit?action=sign_in&limit=10&from=2026-01-01T00:00:00Z",
        )
        .await;
    let entries = audit["items"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["entity_id"] == app.staff.a_sales
            && e["actor_role"] == "sales"
            && e["actor_staff_id"] == app.staff.a_sales),
        "{audit}"
    );

    let before = app
        .read(
            &app.keys.a_admin,
            "/audit?action=sign_in&until=2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(before["items"], json!([]), "nobody signed in before 2026");

    // Without a cookie or a key, nothing.
    let anonymous = call(app.client.get(url(&app, "/customers"))).await;
    assert_eq!(anonymous.status, 401);
}

async fn a_write_with_the_session_cookie_needs_its_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    give_login(&app, &app.keys.a_admin, app.staff.a_sales, "zhang.wei").await;
    let browser = sign_in(&app, "zhang.wei", PASSWORD).await;
    let new = json!({"name": "赵敏", "phones": [{"number": "13900003333"}], "tags": []});

    let forged = call(
        app.client
            .post(url(&app, "/customers"))
            .header("cookie", &browser.cookie)
            .json(&new),
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    assert!(forged.has_code("csrf"), "{}", forged.text);
    let wrong = call(
        app.client
            .post(url(&app, "/customers"))
            .header("cookie", &browser.cookie)
            .header("x-csrf-token", "0".repeat(64))
            .json(&new),
    )
    .await;
    assert!(wrong.has_code("csrf"), "{}", wrong.text);
    let listed = app.read(&app.keys.a_sales, "/customers?name=赵敏").await;
    assert_eq!(listed["items"], json!([]), "a refused write stores nothing");

    let created = call(browser.send(&app, reqwest::Method::POST, "/customers", Some(&new))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["dealer_id"], app.units.dealer_a);
}

async fn signing_out_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    give_login(&app, &app.keys.a_admin, app.staff.a_service, "li.na").await;
    let browser = sign_in(&app, "li.na", PASSWORD).await;
    assert_eq!(call(browser.get(&app, "/customers")).await.status, 200);

    let out = call(browser.send(&app, reqwest::Method::DELETE, "/session", None)).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let cleared = out.header("set-cookie").expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let after = call(browser.get(&app, "/session")).await;
    assert_eq!(
        after.status, 401,
        "the old cookie is refused: {}",
        after.text
    );
    assert_eq!(call(browser.get(&app, "/customers")).await.status, 401);
}

async fn five_wrong_passwords_lock_the_login_until_a_new_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    give_login(&app, &app.keys.a_admin, app.staff.a_sales, "zhang.wei").await;
    for attempt in 1..5 {
        let reply = sign_in_reply(&app, "zhang.wei", "not-the-password").await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text);
        assert!(reply.has_code("login_failed"), "{}", reply.text);
        assert!(reply.header("set-cookie").is_none());
    }
    let fifth = sign_in_reply(&app, "zhang.wei", "not-the-password").await;
    assert_eq!(fifth.status, 429, "{}", fifth.text);
    assert!(fifth.has_code("login_locked"), "{}", fifth.text);
    let retry: u64 = fifth.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "locked 15 minutes: {retry}");

    let right = sign_in_reply(&app, "zhang.wei", PASSWORD).await;
    assert_eq!(right.status, 429, "locked even with the right password");
    // An unknown login is answered like a wrong password, never "no such user".
    let unknown = sign_in_reply(&app, "nobody.here", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.has_code("login_failed"));

    let login = app
        .read(
            &app.keys.a_admin,
            &format!("/staff/{}/login", app.staff.a_sales),
        )
        .await;
    assert!(login["locked_until"].is_string(), "{login}");
    give_login(&app, &app.keys.a_admin, app.staff.a_sales, "zhang.wei").await;
    sign_in(&app, "zhang.wei", PASSWORD).await;
}

async fn a_dealer_admin_gives_logins_to_their_own_staff_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let b_staff = app
        .create(
            &app.keys.b_admin,
            "/staff",
            &json!({"name": "钱进", "role": "sales", "position": "sales_consultant", "phone": "13700001234"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let body = json!({"username": "qian.jin", "password": PASSWORD});
    let foreign = call(app.put(&app.keys.a_admin, &format!("/staff/{b_staff}/login"), &body)).await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    let by_sales =
        call(app.put(&app.keys.a_sales, &format!("/staff/{b_staff}/login"), &body)).await;
    assert_eq!(by_sales.status, 403);
    let weak = call(app.put(
        &app.keys.b_admin,
        &format!("/staff/{b_staff}/login"),
        &json!({"username": "qian.jin", "password": "short"}),
    ))
    .await;
    assert_eq!(weak.status, 422);
    assert!(weak.has_code("weak_password"), "{}", weak.text);
    let bad_name = call(app.put(
        &app.keys.b_admin,
        &format!("/staff/{b_staff}/login"),
        &json!({"username": "钱 进", "password": PASSWORD}),
    ))
    .await;
    assert!(bad_name.has_code("invalid_username"), "{}", bad_name.text);

    give_login(&app, &app.keys.b_admin, b_staff, "qian.jin").await;
    let taken = call(app.put(
        &app.keys.a_admin,
        &format!("/staff/{}/login", app.staff.a_sales),
        &body,
    ))
    .await;
    assert_eq!(taken.status, 409, "{}", taken.text);
    assert!(taken.has_code("username_taken"));

    // HQ gives logins anywhere; a mobile number signs in like the username.
    give_login(&app, &app.keys.hq_admin, b_staff, "qian.jin").await;
    let browser = sign_in(&app, "13700001234", PASSWORD).await;
    let me = call(browser.get(&app, "/session")).await;
    assert_eq!(me.body["me"]["username"], "qian.jin");
    assert_eq!(me.body["me"]["org_unit_id"], app.units.dealer_b);
}

async fn a_password_change_ends_the_other_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    give_login(&app, &app.keys.a_admin, app.staff.a_gm, "wang.gm").await;
    let desk = sign_in(&app, "wang.gm", PASSWORD).await;
    let phone = sign_in(&app, "wang.gm", PASSWORD).await;

    let wrong = call(desk.send(
        &app,
        reqwest::Method::PUT,
        "/session/password",
        Some(&json!({"current_password": "guess-guess", "new_password": "新的密码-2027"})),
    ))
    .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.has_code("wrong_password"));
    let changed = call(desk.send(
        &app,
        reqwest::Method::PUT,
        "/session/password",
        Some(&json!({"current_password": PASSWORD, "new_password": "新的密码-2027"})),
    ))
    .await;
    assert_eq!(changed.status, 204, "{}", changed.text);

    assert_eq!(call(desk.get(&app, "/session")).await.status, 200);
    assert_eq!(call(phone.get(&app, "/session")).await.status, 401);
    assert_eq!(sign_in_reply(&app, "wang.gm", PASSWORD).await.status, 401);
    sign_in(&app, "wang.gm", "新的密码-2027").await;
}

async fn a_disabled_login_cannot_sign_in_and_its_sessions_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    give_login(&app, &app.keys.a_admin, app.staff.a_technician, "sun.qiang").await;
    let browser = sign_in(&app, "sun.qiang", PASSWORD).await;
    let disabled = call(app.delete(
        &app.keys.a_admin,
        &format!("/staff/{}/login", app.staff.a_technician),
    ))
    .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert!(disabled.body["disabled_at"].is_string());
    assert_eq!(call(browser.get(&app, "/session")).await.status, 401);
    let again = sign_in_reply(&app, "sun.qiang", PASSWORD).await;
    assert_eq!(again.status, 401);
    assert!(again.has_code("login_failed"));
}

async fn the_console_is_served_with_a_history_fallback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let page = app
        .client
        .get(format!("{root}/customers/12"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    let home = app.client.get(format!("{root}/")).send().await.unwrap();
    assert_eq!(
        home.text().await.unwrap(),
        html,
        "every app route is index.html"
    );

    // A built console's hashed assets are cached for a year; index.html never is.
    if let Some(start) = html.find("/assets/") {
        let end = start + html[start..].find('"').unwrap();
        let asset = app
            .client
            .get(format!("{root}{}", &html[start..end]))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200);
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000")
        );
        let index = app.client.get(format!("{root}/")).send().await.unwrap();
        assert_eq!(index.headers()["cache-control"], "no-cache");
    }
    let missing = app
        .client
        .get(format!("{root}/assets/nothing-here.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "a missing file is not the app");
    let api = app
        .client
        .get(format!("{root}/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
}
