//! The OpenAPI documents of the two listeners, served at `/api/openapi.json` (public) and
//! `/internal/openapi.json` (internal).
//!
//! The routers are built from the handlers' `#[utoipa::path]` annotations
//! (`utoipa_axum`'s [`OpenApiRouter`] and `routes!`), so the routes a listener serves and the
//! operations its document lists come from one source. Each handler states its errors next
//! to its annotation with [`route_errors!`](crate::route_errors): its caller and inputs
//! bring the common ones (401/403, 400 `invalid_path`, 429, 503 ...), then its own stable
//! codes by status (docs/ERRORS.md). Every error shares the one `ErrorBody` component.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;

use crate::{AppState, Listener};

/// A listener's routes with their documentation: what `public_routes`, `internal_routes` and
/// the hub hand to [`crate::finish`].
pub type Routes = OpenApiRouter<AppState>;

/// The name of the error body's schema in `components.schemas`.
pub const ERROR_BODY: &str = "ErrorBody";
/// The security scheme of `Authorization: Bearer <access token>`; its scopes name the roles
/// a route takes (`customer`, `mitra`, `cc`).
pub const BEARER: &str = "bearer";
/// The security scheme of `?token=<access token>`, which only `/ws` takes.
pub const QUERY_TOKEN: &str = "query_token";

/// Who may call a route: the caller extractor of its handler (`crate::caller`), which
/// decides the 401 and 403 it can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No token needed.
    Anyone,
    Customer,
    Mitra,
    /// A customer or a mitra.
    AppUser,
    /// A control-center operator (either role).
    Operator,
    /// A control-center admin: also 403 `admin_required`.
    Admin,
}

/// What a request goes through besides its handler's own logic, each with the errors it
/// can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// `ApiPath`: 400 `invalid_path`.
    Path,
    /// `ApiQuery`, or a query string read by hand: 400 `invalid_query`.
    Query,
    /// `ApiJson`: 400 `invalid_json` / `invalid_body`, 413, 415.
    Json,
    /// `OptionalJson` (an empty body is fine, no content type needed): 400, 413.
    OptionalJson,
    /// The sign-in rate limit (`crate::rate_limit`): 429 `rate_limited`.
    SignInLimit,
    /// An app user's write, spending their budget (`domain::budget`): 429 `rate_limited`.
    WriteBudget,
    /// Postgres or Redis: 500 `internal_error`, 503 `store_unavailable`. Implied by every
    /// caller but [`Caller::Anyone`]: checking a token reads the revocation list.
    Store,
}

/// The errors of one route, for its `responses(...)`: the common ones of `caller` and
/// `guards`, then `own` (status, codes). One response per status, listing every code.
pub fn error_responses(
    caller: Caller,
    guards: &[Guard],
    own: &[(u16, &[&'static str])],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    let mut add = |status: u16, codes: &[&'static str]| {
        let listed = by_status.entry(status).or_default();
        for code in codes {
            if !listed.contains(code) {
                listed.push(code);
            }
        }
    };
    if caller != Caller::Anyone {
        add(401, &["missing_token", "invalid_token", "token_expired", "token_revoked"]);
        add(403, &["wrong_role"]);
    }
    if caller == Caller::Admin {
        add(403, &["admin_required"]);
    }
    for guard in guards {
        match guard {
            Guard::Path => add(400, &["invalid_path"]),
            Guard::Query => add(400, &["invalid_query"]),
            Guard::Json => {
                add(400, &["invalid_json", "invalid_body"]);
                add(413, &["payload_too_large"]);
                add(415, &["unsupported_media_type"]);
            }
            Guard::OptionalJson => {
                add(400, &["invalid_json", "invalid_body"]);
                add(413, &["payload_too_large"]);
            }
            Guard::SignInLimit => {
                add(400, &["client_address_unknown"]);
                add(429, &["rate_limited"]);
            }
            Guard::WriteBudget => add(429, &["rate_limited"]),
            Guard::Store => {}
        }
    }
    for (status, codes) in own {
        add(*status, codes);
    }
    if caller != Caller::Anyone || guards.contains(&Guard::Store) {
        add(500, &["internal_error"]);
        add(503, &["store_unavailable"]);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), RefOr::T(error_response(status, &codes))))
        .collect()
}

/// One error status: its codes in the description and one example body per code.
fn error_response(status: u16, codes: &[&str]) -> utoipa::openapi::Response {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let listed: Vec<String> = codes.iter().map(|code| format!("`{code}`")).collect();
    let description = format!("{reason}: {} (docs/ERRORS.md)", listed.join(", "));
    let examples = codes.iter().map(|code| {
        let mut error = json!({ "code": code, "message": "a sentence for people; switch on `code`" });
        if status == 503 {
            error["retryable"] = json!(true);
        }
        let example = ExampleBuilder::new().summary(*code).value(Some(json!({ "error": error }))).build();
        (*code, example)
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ERROR_BODY)))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new().description(description).content("application/json", content);
    if codes.contains(&"rate_limited") {
        let seconds = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some("with `rate_limited`: the seconds to wait, as in `retry_after_s`"))
            .build();
        response = response.header("retry-after", seconds);
    }
    response.build()
}

/// Declares the errors of one route as a type for its `#[utoipa::path(responses(...))]`:
/// the caller (a [`Caller`] variant), the [`Guard`]s, then `status => [codes]` per status.
///
/// ```text
/// crate::route_errors! {
///     ConfirmErrors: Customer, [Path];
///     404 => [payment_session_not_found];
///     409 => [payment_session_expired, payment_declined];
/// }
/// ```
#[macro_export]
macro_rules! route_errors {
    (
        $name:ident: $caller:ident, [$($guard:ident),* $(,)?]
        $(; $status:literal => [$($code:ident),+ $(,)?])* $(;)?
    ) => {
        #[doc = concat!("The errors `", stringify!($name), "` lists in the OpenAPI document.")]
        struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::openapi::error_responses(
                    $crate::openapi::Caller::$caller,
                    &[$($crate::openapi::Guard::$guard),*],
                    &[$(($status, &[$(stringify!($code)),+])),*],
                )
            }
        }
    };
}

/// The schema of every error body: `{"error": {"code", "message", ...}}`.
fn error_body_schema() -> Schema {
    let text = |description: &str| {
        ObjectBuilder::new().schema_type(Type::String).description(Some(description.to_owned()))
    };
    let error = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("code", text("stable snake_case code the apps switch on (docs/ERRORS.md)"))
        .required("code")
        .property("message", text("for people; may change"))
        .required("message")
        .property(
            "retryable",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .description(Some("present (true) on 503: retrying later may succeed")),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some("some codes add fields, e.g. `retry_after_s`, `status`, `attempts_left`"));
    let reason = text("with `targeted_mitra_offline`: the cause again, where the old backend's apps read it");
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", error)
        .required("error")
        .property("reason", reason)
        .build()
        .into()
}

/// The documents of both listeners, each set once, when its router is finished (it
/// documents exactly the routes that router serves). Held in the state, so only the document
/// routes read them; no request carries them.
#[derive(Default)]
pub struct Documents {
    public: OnceLock<Document>,
    internal: OnceLock<Document>,
}

impl Documents {
    fn slot(&self, listener: Listener) -> &OnceLock<Document> {
        match listener {
            Listener::Public => &self.public,
            Listener::Internal => &self.internal,
        }
    }

    /// Sets `listener`'s document; a second router for the same listener keeps the first.
    pub fn set(&self, listener: Listener, document: Document) {
        if self.slot(listener).set(document).is_err() {
            tracing::warn!(listener = listener.as_str(), "the OpenAPI document was set already");
        }
    }

    fn response(&self, listener: Listener) -> Response {
        match self.slot(listener).get() {
            Some(document) => document.response(),
            None => Document(None).response(),
        }
    }
}

/// The finished document of a listener, serialized once.
pub struct Document(Option<Bytes>);

impl Document {
    /// Names the listener, adds the shared components and serializes `api`.
    pub fn new(listener: Listener, mut api: OpenApi) -> Self {
        let (title, description) = match listener {
            Listener::Public => (
                "Bestie Hub public API",
                "The apps' listener: REST under /api and the WebSocket upgrade /ws (docs/PROTOCOL.md).",
            ),
            Listener::Internal => (
                "Bestie Hub internal API",
                "The control center's listener (keep it off the internet): REST under /internal, /metrics.",
            ),
        };
        let description = format!(
            "{description} Every answer outside 2xx has the `ErrorBody` shape; each operation lists \
             the stable codes it can answer (docs/ERRORS.md). Unknown routes answer 404 \
             `route_not_found`, a known route with another method 405 `method_not_allowed`.",
        );
        api.info = InfoBuilder::new()
            .title(title)
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(description))
            .build();
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("an access token; the scopes of a requirement name the roles it takes"))
            .build();
        let shared = ComponentsBuilder::new()
            .schema(ERROR_BODY, error_body_schema())
            .security_scheme(BEARER, SecurityScheme::Http(bearer))
            .security_scheme(
                QUERY_TOKEN,
                SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                    "token",
                    "the access token in the query string (only `/ws`, for clients that cannot set headers)",
                ))),
            )
            .build();
        let mut components = api.components.take().unwrap_or_default();
        components.schemas.extend(shared.schemas);
        components.security_schemes.extend(shared.security_schemes);
        api.components = Some(components);
        match serde_json::to_vec(&api) {
            Ok(bytes) => Self(Some(Bytes::from(bytes))),
            Err(error) => {
                tracing::error!(%error, "the OpenAPI document could not be serialized");
                Self(None)
            }
        }
    }

    fn response(&self) -> Response {
        match &self.0 {
            Some(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes.clone()).into_response(),
            None => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "something went wrong on our side",
            )
            .into_response(),
        }
    }
}

route_errors! {
    DocumentErrors: Anyone, [];
    500 => [internal_error];
}

/// This listener's OpenAPI document.
///
/// Every route it serves, with its parameters, body, answer and errors.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    operation_id = "public_openapi_document",
    responses((status = 200, description = "an OpenAPI 3.1 document", body = Object), DocumentErrors)
)]
pub async fn public_document(State(state): State<AppState>) -> Response {
    state.documents.response(Listener::Public)
}

/// This listener's OpenAPI document.
///
/// Every route it serves, with its parameters, body, answer and errors.
#[utoipa::path(
    get,
    path = "/internal/openapi.json",
    tag = "meta",
    operation_id = "internal_openapi_document",
    responses((status = 200, description = "an OpenAPI 3.1 document", body = Object), DocumentErrors)
)]
pub async fn internal_document(State(state): State<AppState>) -> Response {
    state.documents.response(Listener::Internal)
}
