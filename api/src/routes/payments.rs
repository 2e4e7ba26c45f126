//! Payment sessions: what a customer pays before a chat or an extension.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::pairing::ChatRequestView;
use domain::payment::{self, PaymentOrder, PaymentView, Pricing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Customer;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// Name the tier by `tier_id` or `duration_minutes` (both must agree when both are given).
/// Its OpenAPI schema, written by hand (`schema::payment_order`), says which fields go
/// together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    duration_minutes: Option<i32>,
    tier_id: Option<String>,
    /// A returning chat ("Curhat lagi") with a mitra the customer had a session with.
    targeted_mitra_id: Option<Uuid>,
    /// `chat` (default) or `extension`.
    purpose: Option<String>,
    /// The session to extend (`purpose: "extension"` only).
    chat_session_id: Option<Uuid>,
}

impl utoipa::PartialSchema for CreatePayment {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schema::payment_order()
    }
}

impl ToSchema for CreatePayment {}

/// A payment session with its searches, newest first.
#[derive(Serialize, ToSchema)]
pub struct PaymentWithRequests {
    #[serde(flatten)]
    payment: PaymentView,
    chat_requests: Vec<ChatRequestView>,
}

crate::route_errors! {
    CreateErrors: Customer, [Json, WriteBudget];
    400 => [tier_required, invalid_purpose, chat_session_mismatch, extension_not_targeted];
    404 => [unknown_tier, chat_session_not_extendable, unknown_targeted_mitra];
}

/// Creates a payment session for a chat or an extension.
#[utoipa::path(
    post,
    path = "/api/client/payment-sessions",
    tag = "payments",
    operation_id = "create_payment_session",
    request_body = CreatePayment,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = "the payment session, `pending`", body = PaymentView), CreateErrors)
)]
pub async fn create(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<CreatePayment>,
) -> Result<(StatusCode, Json<PaymentView>), ApiError> {
    let order = PaymentOrder {
        tier_id: body.tier_id,
        duration_minutes: body.duration_minutes,
        targeted_mitra_id: body.targeted_mitra_id,
        purpose: body.purpose,
        chat_session_id: body.chat_session_id,
    };
    let payment = payment::create(&state.services, &customer, order).await?;
    Ok((StatusCode::CREATED, Json(PaymentView::from(&payment))))
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
    responses((status = 200, description = "the payment session", body = PaymentView), ConfirmErrors)
)]
pub async fn confirm(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PaymentView>, ApiError> {
    Ok(Json(PaymentView::from(
        &payment::confirm(&state.services, &customer, domain::ids::PaymentId(id)).await?,
    )))
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
    responses((status = 200, description = "the payment session", body = PaymentView), CancelErrors)
)]
pub async fn cancel(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PaymentView>, ApiError> {
    Ok(Json(PaymentView::from(
        &payment::cancel(&state.services, &customer, domain::ids::PaymentId(id)).await?,
    )))
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
        (status = 200, body = PaymentWithRequests,
            description = "the payment session + `chat_requests: [...]`, newest first"),
        GetErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PaymentWithRequests>, ApiError> {
    let payment = payment::get(&state.store, &customer, domain::ids::PaymentId(id)).await?;
    let requests =
        domain::pairing::requests_of_payment(&state.store, &customer, domain::ids::PaymentId(id)).await?;
    Ok(Json(PaymentWithRequests {
        payment: PaymentView::from(&payment),
        chat_requests: requests.iter().map(ChatRequestView::from).collect(),
    }))
}

crate::route_errors! { PricingErrors: Customer, [] }

/// What the caller would pay now: whether their next chat is the free trial, and the tiers
/// (a chat's price when it is not the trial, an extension's always).
#[utoipa::path(
    get,
    path = "/api/client/pricing",
    tag = "payments",
    operation_id = "pricing",
    security(("bearer" = ["customer"])),
    responses((status = 200, description = "the free trial and the tiers", body = Pricing), PricingErrors)
)]
pub async fn pricing(
    State(state): State<AppState>,
    Customer(customer): Customer,
) -> Result<Json<Pricing>, ApiError> {
    Ok(Json(payment::pricing(&state.store, &customer).await?))
}
