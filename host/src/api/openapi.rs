//! The OpenAPI document: what each route's annotation says, completed with what the shared
//! machinery answers on every route (authentication, the extractors' refusals, outages), so a
//! client generated from it (the console's) knows every status it can get, and every error as
//! the `application/problem+json` it is on the wire.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

use super::problem::Problem;
use crate::kpis::export::FileFormat;

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the document's paths are served.
pub const BASE_PATH: &str = "/api/v1";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Dealer platform API",
        description = "Customers, vehicles and their history across a car brand's dealer network. \
                       Authenticate with `Authorization: Bearer <API key>`, or sign in \
                       (`POST /session`) and send the `dealer_session` cookie, with the \
                       session's `X-CSRF-Token` on every write. Errors are \
                       application/problem+json with a stable `code`. A record outside the \
                       caller's scope answers 404, the same as one that does not exist.",
    ),
    modifiers(&BearerAuth),
    security(("api_key" = []), ("session" = [])),
    // A query parameter's enum is not collected from the routes the way a body's is.
    components(schemas(Problem, FileFormat))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("dealer_session"))),
        );
    }
}

/// The document's frame (info, security scheme, the problem schema, the export formats) before the routes join it.
pub fn frame() -> OpenApi {
    ApiDoc::openapi()
}

/// Completes the document the routes' annotations make: the server is [`BASE_PATH`], every
/// operation lists the statuses the shared machinery can answer, and every error response is
/// a [`Problem`] in [`PROBLEM_JSON`].
pub fn complete(mut doc: OpenApi) -> OpenApi {
    doc.servers = Some(vec![Server::new(BASE_PATH)]);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ] {
            if let Some(operation) = operation {
                operation.operation_id = Some(operation_id(method, path));
                complete_operation(operation);
            }
        }
    }
    doc
}

/// A name for the operation unique in the document, from its method and path
/// (`get_customers_id_360` for `GET /customers/{id}/360`): the handlers' function names repeat
/// across modules (`list`, `get`), and a generated client keys operations by this name.
fn operation_id(method: &str, path: &str) -> String {
    let words = path.split(|c: char| !c.is_ascii_alphanumeric());
    std::iter::once(method)
        .chain(words.filter(|w| !w.is_empty()))
        .collect::<Vec<_>>()
        .join("_")
}

fn complete_operation(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_none_or(|requirements| !requirements.contains(&SecurityRequirement::default()));
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let header = |name: &str| {
        params
            .iter()
            .any(|p| p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case(name))
    };
    // A path parameter, or a query filter such as `dealer_id`, names a record.
    let names_record = has(ParameterIn::Path)
        || params
            .iter()
            .any(|p| p.parameter_in == ParameterIn::Query && p.name.ends_with("_id"));
    let any_input = !params.is_empty() || operation.request_body.is_some();
    let body = operation.request_body.is_some();
    let if_match = header("If-Match");

    let mut implied: Vec<(&str, &str)> = Vec::new();
    if any_input {
        implied.push((
            "400",
            "The request is malformed: unparsable JSON, a query or a header of the wrong shape.",
        ));
        implied.push((
            "422",
            "A value is refused; `errors` names each field, with a code.",
        ));
    }
    if secured {
        implied.push((
            "401",
            "No API key or session, or one that is unknown, revoked or ended.",
        ));
        implied.push((
            "403",
            "The caller's role may not do this, or a session's write lacks its CSRF token.",
        ));
    }
    if names_record {
        implied.push((
            "404",
            "A record the request names is not in the caller's scope.",
        ));
    }
    if body {
        implied.push(("409", "A record with these unique values already exists."));
        implied.push(("413", "The body is larger than this route accepts."));
        implied.push(("415", "The body is not of a media type this route accepts."));
    }
    if if_match {
        implied.push((
            "412",
            "`If-Match` names a version that is no longer current.",
        ));
        implied.push(("428", "`If-Match` is required."));
    }
    implied.push(("500", "An internal error; it has been logged."));
    implied.push((
        "503",
        "The database is unavailable for the moment; retry after `Retry-After` seconds.",
    ));
    let responses = &mut operation.responses.responses;
    for (status, description) in implied {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.starts_with(['4', '5'])
        {
            response.content.clear();
            response.content.insert(
                PROBLEM_JSON.to_owned(),
                Content::new(Some(Ref::from_schema_name("Problem"))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::sales::funnel::GroupBy;
    use crate::sales::leads::Stage;

    fn document() -> Value {
        serde_json::to_value(super::super::document()).unwrap()
    }

    fn enum_of(doc: &Value, schema: &str) -> Vec<String> {
        doc["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| {
                panic!(
                    "{schema} is an enum: {}",
                    doc["components"]["schemas"][schema]
                )
            })
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_operation_has_its_own_id() {
        let doc = crate::api::document();
        let mut seen = std::collections::HashSet::new();
        for item in doc.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                let id = operation.operation_id.clone().expect("an operationId");
                assert!(seen.insert(id.clone()), "{id} names two operations");
            }
        }
        assert!(seen.contains("get_customers_id_360"), "{seen:?}");
    }

    #[test]
    fn enums_are_documented_in_their_wire_spelling() {
        let doc = document();
        let wire = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            enum_of(&doc, "GroupBy"),
            wire(GroupBy::ALL.iter().map(|g| g.as_str()).collect())
        );
        assert_eq!(
            enum_of(&doc, "Stage"),
            wire(Stage::ALL.iter().map(|s| s.as_str()).collect())
        );
    }

    #[test]
    fn a_lead_stage_is_a_lead_stage() {
        let doc = document();
        let stage = &doc["components"]["schemas"]["Lead"]["properties"]["stage"]["$ref"];
        assert_eq!(stage, "#/components/schemas/Stage");
        assert_ne!(enum_of(&doc, "Stage"), enum_of(&doc, "OwnerTicketStage"));
    }

    #[test]
    fn every_error_is_documented_as_a_problem() {
        let doc = document();
        let mut errors = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with(['4', '5']) {
                        errors += 1;
                        let content = response["content"].as_object().unwrap();
                        assert_eq!(
                            content.keys().collect::<Vec<_>>(),
                            [super::PROBLEM_JSON],
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(errors > 100, "the shared errors are listed ({errors})");
    }

    #[test]
    fn the_shared_refusals_are_listed() {
        let doc = document();
        let get = &doc["paths"]["/customers/{id}"]["get"]["responses"];
        for status in ["401", "403", "404", "503"] {
            assert!(
                get.get(status).is_some(),
                "GET /customers/{{id}} lists {status}"
            );
        }
        let patch = &doc["paths"]["/customers/{id}"]["patch"]["responses"];
        for status in ["400", "412", "413", "415", "422", "428"] {
            assert!(
                patch.get(status).is_some(),
                "PATCH /customers/{{id}} lists {status}"
            );
        }
        let health = &doc["paths"]["/health"]["get"]["responses"];
        assert!(health.get("401").is_none(), "/health needs no key");
        assert_eq!(doc["servers"][0]["url"], super::BASE_PATH);
    }
}
