//! Pairing: the customer's searches (general blast, returning chat, fallback, cancel) and
//! the mitra's answers (accept, decline, status).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::pairing::{self, Accepted, RequestRow};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Customer, Mitra};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::payments::payment_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRef {
    payment_session_id: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Returning {
    payment_session_id: Uuid,
    mitra_id: Uuid,
}

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

/// # `POST /api/client/chat-requests`
/// `{payment_session_id}` (confirmed, the caller's) → 201: the blast is under way; the
/// outcome arrives as `paired` or `pairing_failed` on the hub.
pub async fn start_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<PaymentRef>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok(created(&pairing::start_blast(&state.services, &customer, body.payment_session_id).await?))
}

/// # `POST /api/client/chat-requests/returning`
/// `{payment_session_id, mitra_id}` → 201, or 409 `targeted_mitra_offline` at once.
pub async fn start_returning(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<Returning>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request =
        pairing::start_returning(&state.services, &customer, body.payment_session_id, body.mitra_id).await?;
    Ok(created(&request))
}

/// # `POST /api/client/chat-requests/{payment_session_id}/fallback-to-blast`
/// After a returning chat failed: a general blast on the same payment.
pub async fn fallback_to_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(payment): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok(created(&pairing::fallback_to_blast(&state.services, &customer, payment).await?))
}

/// # `POST /api/client/chat-requests/cancel`
/// `{payment_session_id}`: stops the search; the payment fails with `customer_cancelled`.
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

/// # `POST /api/mitra/chat-requests/{id}/accept`
/// The first accept wins and starts the chat; the others get 409 `chat_request_taken`.
pub async fn accept(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(accepted_json(&pairing::accept(&state.services, &mitra, id).await?)))
}

/// # `POST /api/mitra/chat-requests/{id}/decline`
pub async fn decline(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let declined = pairing::decline(&state.services, &mitra, id).await?;
    Ok(Json(json!({ "request_id": declined.request.id, "response": "rejected" })))
}

/// # `GET /api/mitra/chat-requests/{id}/status`
/// For an app that resumed or opened a push: is the request still open?
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
