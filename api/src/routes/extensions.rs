//! Extensions: the customer asks for more time in a session, the mitra answers; either
//! party reads the request that is waiting.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::chat::SessionStatus;
use domain::extension::{self, ExtensionView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{AppUser, Customer, Mitra};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAsk {
    /// A pending extension payment of this session; charged only on approval.
    extension_payment_session_id: Uuid,
}

/// An answered extension request, with where the session went.
#[derive(Serialize, ToSchema)]
pub struct Answered {
    #[serde(flatten)]
    extension: ExtensionView,
    session_ends_at: chrono::DateTime<chrono::Utc>,
    session_status: SessionStatus,
}

/// The session's extension request that waits for the mitra, or `null`.
#[derive(Serialize, ToSchema)]
pub struct PendingExtension {
    extension: Option<ExtensionView>,
}

crate::route_errors! {
    RequestExtensionErrors: Customer, [Path, Json, WriteBudget];
    404 => [chat_session_not_found, payment_session_not_found];
    409 => [chat_session_not_extendable, extension_payment_not_usable, extension_pending];
}

/// Asks the mitra for more time; the session becomes `extending`.
///
/// The mitra's answer (or the window's default) arrives as `extension_resolved`. Charged
/// only on approval.
#[utoipa::path(
    post,
    path = "/api/client/chat-sessions/{id}/extension",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = ExtensionAsk,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = "the extension request, `pending`", body = ExtensionView), RequestExtensionErrors)
)]
pub async fn request_extension(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ExtensionAsk>,
) -> Result<(StatusCode, Json<ExtensionView>), ApiError> {
    let extension = extension::request(
        &state.services,
        &customer,
        domain::ids::SessionId(id),
        domain::ids::PaymentId(body.extension_payment_session_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ExtensionView::from(&extension))))
}

async fn answer_extension(
    state: &AppState,
    mitra: &domain::auth::Principal,
    id: Uuid,
    approve: bool,
) -> Result<Json<Answered>, ApiError> {
    let resolved = extension::answer(&state.services, mitra, domain::ids::ExtensionId(id), approve).await?;
    Ok(Json(Answered {
        extension: ExtensionView::from(&resolved.extension),
        session_ends_at: resolved.ends_at,
        session_status: resolved.session_status,
    }))
}

crate::route_errors! {
    AnswerExtensionErrors: Mitra, [Path, WriteBudget];
    404 => [extension_not_found];
    409 => [extension_resolved];
    503 => [payment_provider_unavailable];
}

/// The mitra approves: the customer is charged now and the session runs longer.
#[utoipa::path(
    post,
    path = "/api/mitra/extension-requests/{id}/approve",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the extension request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, description = "the extension request (`approved`, or `rejected` when the charge was \
            declined) + `session_ends_at`, `session_status`", body = Answered),
        AnswerExtensionErrors,
    )
)]
pub async fn approve_extension(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Answered>, ApiError> {
    answer_extension(&state, &mitra, id, true).await
}

/// The mitra rejects: nothing is charged.
///
/// An approval that was charged before it died is finished instead (the customer paid).
#[utoipa::path(
    post,
    path = "/api/mitra/extension-requests/{id}/reject",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the extension request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, description = "the extension request (`rejected`) + `session_ends_at`, \
            `session_status`", body = Answered),
        AnswerExtensionErrors,
    )
)]
pub async fn reject_extension(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Answered>, ApiError> {
    answer_extension(&state, &mitra, id, false).await
}

crate::route_errors! {
    PendingErrors: AppUser, [Path];
    404 => [chat_session_not_found];
}

/// The session's extension request that waits for the mitra (`null` when none), for an app
/// that resumed and shows the overlay again.
#[utoipa::path(
    get,
    path = "/api/shared/chat-sessions/{id}/extension",
    tag = "chat",
    operation_id = "pending_extension",
    params(("id" = Uuid, Path, description = "the chat session")),
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = "`{extension}` or `{extension: null}`", body = PendingExtension), PendingErrors)
)]
pub async fn pending(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PendingExtension>, ApiError> {
    let pending = extension::pending(&state.store, &caller, domain::ids::SessionId(id)).await?;
    Ok(Json(PendingExtension { extension: pending.as_ref().map(ExtensionView::from) }))
}
