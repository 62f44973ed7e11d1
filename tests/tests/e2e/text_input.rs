//! Text a person could not have typed is refused with 422 before anything is stored: a NUL
//! character anywhere in a JSON body, a query or a path (PostgreSQL cannot store it and SQLite
//! would keep it), and names made only of invisible characters. A route called with a method
//! it does not take answers problem+json like every other error.

use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends};
use serde_json::json;

on_both_backends!(
    a_nul_character_in_a_body_is_refused_naming_its_field,
    a_nul_character_in_a_query_or_path_is_refused,
    a_name_of_only_invisible_characters_is_refused,
    a_wrong_method_is_a_problem_listing_the_allowed_ones,
);

fn field_error<'a>(reply: &'a Reply, field: &str) -> &'a serde_json::Value {
    reply.body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .unwrap_or_else(|| panic!("no error for {field}: {}", reply.text))
}

async fn customer_count(app: &TestApp) -> usize {
    app.read(&app.keys.a_sales, "/customers?limit=200").await["items"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn a_nul_character_in_a_body_is_refused_naming_its_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = customer_count(&app).await;
    for (body, field) in [
        (
            json!({"name": "王\u{0}芳", "phones": [{"number": "13800138000"}]}),
            "name",
        ),
        (
            json!({"name": "王芳", "phones": [{"number": "13800138000\u{0}"}]}),
            "phones[0].number",
        ),
        (
            json!({"name": "王芳", "tags": ["VIP", "老\u{0}客户"]}),
            "tags[1]",
        ),
    ] {
        let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(field_error(&reply, field)["code"], "nul_character");
    }
    assert_eq!(customer_count(&app).await, before, "nothing stored");

    // The letters `\u0000` typed as text (an escaped backslash) are not a NUL.
    let typed = json!({"name": "王芳", "tags": ["\\u0000"]});
    let created = app.create(&app.keys.a_sales, "/customers", &typed).await;
    assert_eq!(created["tags"][0], "\\u0000", "{created}");

    let id = created["id"].as_i64().unwrap();
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{id}"),
            &json!({"name": "王\u{0}"}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(field_error(&reply, "name")["code"], "nul_character");
    let read = app
        .read(&app.keys.a_sales, &format!("/customers/{id}"))
        .await;
    assert_eq!(read["name"], "王芳", "the update changed nothing");
}

async fn a_nul_character_in_a_query_or_path_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.get(&app.keys.a_sales, "/customers?limit=5&name=%E7%8E%8B%00")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(field_error(&reply, "name")["code"], "nul_character");

    let reply = call(app.get(&app.keys.a_sales, "/vehicles?plate=%00")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(field_error(&reply, "plate")["code"], "nul_character");

    let reply = call(app.get(&app.keys.a_sales, "/customers/1%00")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(field_error(&reply, "path")["code"], "nul_character");
}

async fn a_name_of_only_invisible_characters_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = customer_count(&app).await;
    for name in ["\u{200B}\u{200D}", "\u{3000}\u{FEFF}", "\u{2060}\u{3164}"] {
        let body = json!({"name": name, "phones": [{"number": "13800138000"}]});
        let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
        assert_eq!(reply.status, 422, "{name:?}: {}", reply.text);
        assert_eq!(field_error(&reply, "name")["code"], "invalid_name");
    }
    assert_eq!(customer_count(&app).await, before, "nothing stored");

    // Zero-width characters around a real name are trimmed off like spaces.
    let created = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "\u{200B}王芳\u{FEFF}", "phones": [{"number": "13800138001"}]}),
        )
        .await;
    assert_eq!(created["name"], "王芳");

    let id = created["id"].as_i64().unwrap();
    let ticket = json!({"customer_id": id, "channel": "hotline", "category": "complaint",
                        "subject": "\u{200B}\u{200C}"});
    let reply = call(app.post(&app.keys.a_service, "/tickets", &ticket)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(field_error(&reply, "subject")["code"], "invisible_text");
}

async fn a_wrong_method_is_a_problem_listing_the_allowed_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.delete(&app.keys.a_sales, "/customers")).await;
    assert_eq!(reply.status, 405, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["code"], "method_not_allowed", "{}", reply.text);
    let allow = reply.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
}
