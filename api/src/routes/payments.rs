//! Payment sessions: what a customer pays before a chat or an extension.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::payment::{self, PaymentOrder, PaymentRow};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Customer;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::pairing::request_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    duration_minutes: Option<i32>,
    tier_id: Option<String>,
    targeted_mitra_id: Option<Uuid>,
    purpose: Option<String>,
    chat_session_id: Option<Uuid>,
}

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

/// # `POST /api/client/payment-sessions`
/// `{tier_id | duration_minutes, targeted_mitra_id?, purpose?, chat_session_id?}` → 201.
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

/// # `POST /api/client/payment-sessions/{id}/confirm`
/// Charges and confirms; confirming again returns the session without charging again.
pub async fn confirm(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(payment_json(&payment::confirm(&state.services, &customer, id).await?)))
}

/// # `POST /api/client/payment-sessions/{id}/cancel`
/// pending → abandoned.
pub async fn cancel(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(payment_json(&payment::cancel(&state.services, &customer, id).await?)))
}

/// # `GET /api/client/payment-sessions/{id}`
/// The session, with its searches (newest first) so a resumed app can find where it was.
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
