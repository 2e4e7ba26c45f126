//! Pairing: the customer's searches (general blast, returning chat, fallback, cancel) and
//! the mitra's answers (accept, decline, status).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::ids::{MitraId, PaymentId, RequestId};
use domain::pairing::{
    self, AcceptedView, ChatRequestView, OfferResponse, OfferView, RequestRow, RequestStatusView,
};
use domain::payment::PaymentView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Customer, Mitra};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

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

fn created(request: &RequestRow) -> (StatusCode, Json<ChatRequestView>) {
    (StatusCode::CREATED, Json(ChatRequestView::from(request)))
}

/// What a customer's cancel did: the payment, and the search it stopped (`null` when none
/// was running).
#[derive(Serialize, ToSchema)]
pub struct CancelledSearch {
    payment_session: PaymentView,
    chat_request: Option<ChatRequestView>,
}

/// The requests offered to the mitra that wait for their answer.
#[derive(Serialize, ToSchema)]
pub struct OpenOffers {
    requests: Vec<OfferView>,
}

/// A mitra's recorded decline.
#[derive(Serialize, ToSchema)]
pub struct DeclinedOffer {
    request_id: Uuid,
    /// Always `rejected`.
    response: OfferResponse,
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
    responses((status = 201, description = "the chat request, `pending`", body = ChatRequestView), StartBlastErrors)
)]
pub async fn start_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<PaymentRef>,
) -> Result<(StatusCode, Json<ChatRequestView>), ApiError> {
    Ok(created(&pairing::start_blast(&state.services, &customer, PaymentId(body.payment_session_id)).await?))
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
    responses((status = 201, description = "the chat request, `pending`", body = ChatRequestView), StartReturningErrors)
)]
pub async fn start_returning(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<Returning>,
) -> Result<(StatusCode, Json<ChatRequestView>), ApiError> {
    let request = pairing::start_returning(
        &state.services,
        &customer,
        PaymentId(body.payment_session_id),
        MitraId(body.mitra_id),
    )
    .await?;
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
    responses((status = 201, description = "the chat request, `pending`", body = ChatRequestView), FallbackErrors)
)]
pub async fn fallback_to_blast(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(payment): ApiPath<PaymentId>,
) -> Result<(StatusCode, Json<ChatRequestView>), ApiError> {
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
            search was running)", body = CancelledSearch),
        CancelErrors,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiJson(body): ApiJson<PaymentRef>,
) -> Result<Json<CancelledSearch>, ApiError> {
    let cancelled = pairing::cancel(&state.services, &customer, PaymentId(body.payment_session_id)).await?;
    Ok(Json(CancelledSearch {
        payment_session: PaymentView::from(&cancelled.payment),
        chat_request: cancelled.request.as_ref().map(|failed| ChatRequestView::from(&failed.request)),
    }))
}

crate::route_errors! {
    AcceptErrors: Mitra, [Path, WriteBudget];
    404 => [chat_request_not_found];
    409 => [
        customer_blocked,
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
        (status = 200, description = "the session that started (or had started, on a repeat)", body = AcceptedView),
        AcceptErrors,
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<RequestId>,
) -> Result<Json<AcceptedView>, ApiError> {
    Ok(Json(AcceptedView::from(&pairing::accept(&state.services, &mitra, id).await?)))
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
        (status = 200, body = DeclinedOffer, description = "the decline, recorded"),
        DeclineErrors,
    )
)]
pub async fn decline(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<RequestId>,
) -> Result<Json<DeclinedOffer>, ApiError> {
    let declined = pairing::decline(&state.services, &mitra, id).await?;
    Ok(Json(DeclinedOffer { request_id: declined.request.id.0, response: OfferResponse::Rejected }))
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
        (status = 200, body = RequestStatusView, description = "where the request stands for you"),
        StatusErrors,
    )
)]
pub async fn status(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiPath(id): ApiPath<RequestId>,
) -> Result<Json<RequestStatusView>, ApiError> {
    let status = pairing::status_for_mitra(&state.store, &mitra, id).await?;
    Ok(Json(RequestStatusView::from(&status)))
}

crate::route_errors! {
    OpenOffersErrors: Mitra, [];
}

/// The requests offered to you that still wait for your answer, soonest to close first:
/// for an app that opens without an event or a push to go by.
#[utoipa::path(
    get,
    path = "/api/mitra/chat-requests/open",
    tag = "pairing",
    operation_id = "open_chat_requests",
    security(("bearer" = ["mitra"])),
    responses((status = 200, body = OpenOffers, description = "the open offers"), OpenOffersErrors)
)]
pub async fn open_offers(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
) -> Result<Json<OpenOffers>, ApiError> {
    Ok(Json(OpenOffers { requests: pairing::open_offers(&state.store, &mitra).await? }))
}
