//! The OpenAPI 3 document, generated from the handlers and the JSON types
//! (utoipa), served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "quern", description = "quern's REST API: jobs, tasks, workers and events of a quern cluster."),
    paths(
        crate::system::health, crate::system::version, crate::system::apps,
        crate::login::login, crate::login::validate,
        crate::jobs::list, crate::jobs::submit, crate::jobs::get, crate::jobs::kill,
        crate::jobs::tasks, crate::jobs::counters, crate::jobs::events, crate::jobs::log,
        crate::workers::list, crate::workers::drain, crate::workers::enable, crate::workers::deregister,
        crate::files::upload, crate::files::put_code, crate::files::list_output, crate::files::download,
        crate::users::list, crate::users::add, crate::users::remove, crate::users::password,
        crate::events::stream, document,
    ),
    components(schemas(crate::ErrorBody, crate::ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "jobs"), (name = "workers"), (name = "files"), (name = "users"), (name = "events"), (name = "system")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
