//! Pairing: the customer's searches (general blast, returning chat, fallback, cancel) and
//! the mitra's answers (accept, decline, status).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::pairing::{self, Accepted, RequestRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Customer, Mitra};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::payments::payment_json;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRef {
    /// A confirmed payment session of the caller's.
    payment_session_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Returning {
    /// A confirmed payment session made for `mitra_id`.
    payment_session_id: Uuid,
    mitra_id: Uuid,
}

/// What the searches answer with.
const REQUEST: &str = "the chat request `{id, payment_session_id, request_type, targeted_mitra_id, status, \
    failure_cause, created_at, expires_at, resolved_at}`";

pub(crate) fn request_json(request: &RequestRow) -> Value {
    json!({
        "id": request.id,
        "payment_session_id": request.payment_session_id,
        "request_type": request.request_type,
        "targeted_mitra_id": request.targeted_mitra_id,
        "status": request.status,
        "failure_cause": request.failure_cause,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "resolved_at": request.resolved_at,
    })
}

fn created(request: &RequestRow) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(request_json(request)))
}

crate::route_errors! {
    StartBlastErrors: Customer, [Json, WriteBudget];
    409 => [
        payment_not_owned,
        payment_not_for_chat,
        search_in_progress,
        already_paired,
        payment_not_confirmed,
        payment_session_expired,
    ];
}

/// Starts a general blast for a confirmed payment.
///
/// The outcome arrives as `paired` or `pairing_failed` on the hub.
#[utoipa::path(
    post,
    path = "/api/client/chat-requests",
    tag = "pairing",
    request_body = PaymentRef,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = REQUEST, body = Object), StartBlastErrors)
)]
pub async fn start_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<PaymentRef>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok(created(&pairing::start_blast(&state.services, &customer, body.payment_session_id).await?))
}

crate::route_errors! {
    StartReturningErrors: Customer, [Json, WriteBudget];
    409 => [
        payment_not_owned,
        payment_not_for_chat,
        search_in_progress,
        already_paired,
        payment_not_confirmed,
        payment_session_expired,
        targeted_mitra_mismatch,
        targeted_mitra_offline,
    ];
}

/// Starts a returning chat ("Curhat lagi") with one mitra.
///
/// 409 `targeted_mitra_offline` at once when that mitra is offline or full (the payment
/// then fails with that cause, and a fallback is offered).
#[utoipa::path(
    post,
    path = "/api/client/chat-requests/returning",
    tag = "pairing",
    request_body = Returning,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = REQUEST, body = Object), StartReturningErrors)
)]
pub async fn start_returning(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<Returning>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request =
        pairing::start_returning(&state.services, &customer, body.payment_session_id, body.mitra_id).await?;
    Ok(created(&request))
}

crate::route_errors! {
    FallbackErrors: Customer, [Path, WriteBudget];
    409 => [payment_not_owned, payment_not_for_chat, search_in_progress, already_paired, fallback_not_available];
}

/// After a returning chat failed: a general blast on the same payment (no second charge).
#[utoipa::path(
    post,
    path = "/api/client/chat-requests/{payment_session_id}/fallback-to-blast",
    tag = "pairing",
    params(("payment_session_id" = Uuid, Path, description = "the payment of the failed returning chat")),
    security(("bearer" = ["customer"])),
    responses((status = 201, description = REQUEST, body = Object), FallbackErrors)
)]
pub async fn fallback_to_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(payment): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok(created(&pairing::fallback_to_blast(&state.services, &customer, payment).await?))
}

crate::route_errors! {
    CancelErrors: Customer, [Json, WriteBudget];
    404 => [payment_session_not_found];
    409 => [already_paired, payment_not_confirmed];
}

/// Stops the search; the payment fails with `customer_cancelled` (idempotent).
#[utoipa::path(
    post,
    path = "/api/client/chat-requests/cancel",
    tag = "pairing",
    operation_id = "cancel_search",
    request_body = PaymentRef,
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "`{payment_session, chat_request}` (`chat_request` null when no \
            search was running)", body = Object),
        CancelErrors,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<PaymentRef>,
) -> Result<Json<Value>, ApiError> {
    let cancelled = pairing::cancel(&state.services, &customer, body.payment_session_id).await?;
    Ok(Json(json!({
        "payment_session": payment_json(&cancelled.payment),
        "chat_request": cancelled.request.as_ref().map(|failed| request_json(&failed.request)),
    })))
}

fn accepted_json(accepted: &Accepted) -> Value {
    json!({
        "request_id": accepted.request.id,
        "request_type": accepted.request.request_type,
        "chat_session": {
            "id": accepted.session.id,
            "started_at": accepted.session.started_at,
            "ends_at": accepted.session.ends_at,
            "duration_minutes": accepted.duration_minutes,
        },
        "customer": { "call_name": accepted.customer_call_name },
    })
}

crate::route_errors! {
    AcceptErrors: Mitra, [Path, WriteBudget];
    404 => [chat_request_not_found];
    409 => [
        chat_request_taken,
        chat_request_cancelled,
        chat_request_expired,
        chat_request_closed,
        already_responded,
        mitra_at_capacity,
    ];
}

/// The first accept wins and starts the chat; the others get 409 `chat_request_taken`.
///
/// Repeating a won accept returns the same session.
#[utoipa::path(
    post,
    path = "/api/mitra/chat-requests/{id}/accept",
    tag = "pairing",
    operation_id = "accept_chat_request",
    params(("id" = Uuid, Path, description = "the chat request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, description = "`{request_id, request_type, chat_session: {id, started_at, ends_at, \
            duration_minutes}, customer: {call_name}}`", body = Object),
        AcceptErrors,
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(accepted_json(&pairing::accept(&state.services, &mitra, id).await?)))
}

crate::route_errors! {
    DeclineErrors: Mitra, [Path, WriteBudget];
    404 => [chat_request_not_found];
    409 => [
        chat_request_taken,
        chat_request_cancelled,
        chat_request_expired,
        chat_request_closed,
        already_responded,
    ];
}

/// The mitra declines a request offered to them.
#[utoipa::path(
    post,
    path = "/api/mitra/chat-requests/{id}/decline",
    tag = "pairing",
    operation_id = "decline_chat_request",
    params(("id" = Uuid, Path, description = "the chat request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, body = Object, description = "`{request_id, response: \"rejected\"}`"),
        DeclineErrors,
    )
)]
pub async fn decline(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let declined = pairing::decline(&state.services, &mitra, id).await?;
    Ok(Json(json!({ "request_id": declined.request.id, "response": "rejected" })))
}

crate::route_errors! {
    StatusErrors: Mitra, [Path];
    404 => [chat_request_not_found];
}

/// For an app that resumed or opened a push: is the request still open?
#[utoipa::path(
    get,
    path = "/api/mitra/chat-requests/{id}/status",
    tag = "pairing",
    operation_id = "chat_request_status",
    params(("id" = Uuid, Path, description = "the chat request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, body = Object, description = "`{request_id, request_type, status, your_response, \
            expires_at}`; `status` is `pending`, `accepted` (by you), `taken`, `cancelled`, `expired` \
            or `closed`"),
        StatusErrors,
    )
)]
pub async fn status(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let status = pairing::status_for_mitra(&state.store, &mitra, id).await?;
    Ok(Json(json!({
        "request_id": status.request.id,
        "request_type": status.request.request_type,
        "status": status.status,
        "your_response": status.response,
        "expires_at": status.request.expires_at,
    })))
}
