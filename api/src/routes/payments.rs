//! Payment sessions: what a customer pays before a chat or an extension.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::payment::{self, PaymentOrder, PaymentRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Customer;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::pairing::request_json;

/// Name the tier by `tier_id` or `duration_minutes` (both must agree when both are given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    duration_minutes: Option<i32>,
    tier_id: Option<String>,
    /// A returning chat ("Curhat lagi") with a mitra the customer had a session with.
    targeted_mitra_id: Option<Uuid>,
    /// `chat` (default) or `extension`.
    purpose: Option<String>,
    /// The session to extend (`purpose: "extension"` only).
    chat_session_id: Option<Uuid>,
}

/// What every route here answers with.
const PAYMENT: &str = "the payment session `{id, status, amount, is_free_trial, duration_minutes, tier_id, \
    purpose, targeted_mitra_id, chat_session_id, created_at, expires_at, confirmed_at, consumed_at, \
    resolved_at}`";

pub(crate) fn payment_json(payment: &PaymentRow) -> Value {
    json!({
        "id": payment.id,
        "status": payment.status,
        "amount": payment.amount,
        "is_free_trial": payment.is_free_trial,
        "duration_minutes": payment.duration_minutes,
        "tier_id": payment.tier_id,
        "purpose": payment.purpose,
        "targeted_mitra_id": payment.targeted_mitra_id,
        "chat_session_id": payment.chat_session_id,
        "created_at": payment.created_at,
        "expires_at": payment.expires_at,
        "confirmed_at": payment.confirmed_at,
        "consumed_at": payment.consumed_at,
        "resolved_at": payment.resolved_at,
    })
}

crate::route_errors! {
    CreateErrors: Customer, [Json, WriteBudget];
    400 => [tier_required, unknown_tier, invalid_purpose, chat_session_mismatch, extension_not_targeted];
    404 => [chat_session_not_extendable, unknown_targeted_mitra];
}

/// Creates a payment session for a chat or an extension.
#[utoipa::path(
    post,
    path = "/api/client/payment-sessions",
    tag = "payments",
    operation_id = "create_payment_session",
    request_body = CreatePayment,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = PAYMENT, body = Object), CreateErrors)
)]
pub async fn create(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<CreatePayment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let order = PaymentOrder {
        tier_id: body.tier_id,
        duration_minutes: body.duration_minutes,
        targeted_mitra_id: body.targeted_mitra_id,
        purpose: body.purpose,
        chat_session_id: body.chat_session_id,
    };
    let payment = payment::create(&state.services, &customer, order).await?;
    Ok((StatusCode::CREATED, Json(payment_json(&payment))))
}

crate::route_errors! {
    ConfirmErrors: Customer, [Path, WriteBudget];
    404 => [payment_session_not_found];
    409 => [
        payment_session_expired,
        payment_session_abandoned,
        free_trial_used,
        payment_declined,
        extension_charged_on_approval,
    ];
    503 => [payment_provider_unavailable];
}

/// Charges and confirms; confirming again returns the session without charging again.
#[utoipa::path(
    post,
    path = "/api/client/payment-sessions/{id}/confirm",
    tag = "payments",
    operation_id = "confirm_payment_session",
    params(("id" = Uuid, Path, description = "the payment session")),
    security(("bearer" = ["customer"])),
    responses((status = 200, description = PAYMENT, body = Object), ConfirmErrors)
)]
pub async fn confirm(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(payment_json(&payment::confirm(&state.services, &customer, id).await?)))
}

crate::route_errors! {
    CancelErrors: Customer, [Path, WriteBudget];
    404 => [payment_session_not_found];
    409 => [payment_session_not_pending, payment_session_expired];
}

/// Abandons a pending payment session (idempotent).
#[utoipa::path(
    post,
    path = "/api/client/payment-sessions/{id}/cancel",
    tag = "payments",
    operation_id = "cancel_payment_session",
    params(("id" = Uuid, Path, description = "the payment session")),
    security(("bearer" = ["customer"])),
    responses((status = 200, description = PAYMENT, body = Object), CancelErrors)
)]
pub async fn cancel(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(payment_json(&payment::cancel(&state.services, &customer, id).await?)))
}

crate::route_errors! {
    GetErrors: Customer, [Path];
    404 => [payment_session_not_found];
}

/// The session, with its searches (newest first) so a resumed app can find where it was.
#[utoipa::path(
    get,
    path = "/api/client/payment-sessions/{id}",
    tag = "payments",
    operation_id = "get_payment_session",
    params(("id" = Uuid, Path, description = "the payment session")),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, body = Object,
            description = "the payment session + `chat_requests: [...]`, newest first"),
        GetErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let payment = payment::get(&state.store, &customer, id).await?;
    let requests = domain::pairing::requests_of_payment(&state.store, &customer, id).await?;
    let mut body = payment_json(&payment);
    body["chat_requests"] = requests.iter().map(request_json).collect();
    Ok(Json(body))
}
