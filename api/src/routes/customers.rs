//! Customers and payments as operators look after them (internal listener): find a customer,
//! see their payments and chats, block and unblock them; the payments ledger, a page at a
//! time or as CSV; and the console's front page.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::accounts::{self, CustomerDetail, CustomerPage, CustomerView};
use domain::calendar::{Period, TimeBound};
use domain::ids::CustomerId;
use domain::payment::{PaymentFilter, PaymentPage, PaymentStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CustomerQuery {
    /// An id, a phone (`+62812…` or `0812…`; digits match anywhere in the number) or part of
    /// the call name.
    #[param(schema_with = crate::schema::query_text)]
    q: Option<String>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

crate::route_errors! {
    ListErrors: Operator, [Query];
    400 => [invalid_page];
}

/// Customers, newest first, found by id, phone or call name.
#[utoipa::path(
    get,
    path = "/internal/customers",
    tag = "customers",
    params(CustomerQuery),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "a page of customers, newest first", body = CustomerPage), ListErrors)
)]
pub async fn list_customers(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    Ok(Json(accounts::find_customers(&state.store, query.q.as_deref(), query.limit, query.offset).await?))
}

crate::route_errors! {
    CustomerErrors: Operator, [Path];
    404 => [customer_not_found];
}

/// One customer with their latest 50 payments and 50 chats.
#[utoipa::path(
    get,
    path = "/internal/customers/{id}",
    tag = "customers",
    params(("id" = Uuid, Path, description = "the customer")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the customer", body = CustomerDetail), CustomerErrors)
)]
pub async fn get_customer(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(id): ApiPath<CustomerId>,
) -> Result<Json<CustomerDetail>, ApiError> {
    Ok(Json(accounts::customer_detail(&state.store, id).await?))
}

/// Blocks a customer: sign-in refused, every sign-in ended, sockets closed with 4003 (audited).
#[utoipa::path(
    post,
    path = "/internal/customers/{id}/block",
    tag = "customers",
    params(("id" = Uuid, Path, description = "the customer")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the customer, blocked", body = CustomerView), CustomerErrors)
)]
pub async fn block_customer(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<CustomerId>,
) -> Result<Json<CustomerView>, ApiError> {
    Ok(Json(accounts::set_customer_blocked(&state.store, &state.auth.settings, &operator, id, true).await?))
}

/// Unblocks a customer: they sign in again (audited).
#[utoipa::path(
    post,
    path = "/internal/customers/{id}/unblock",
    tag = "customers",
    params(("id" = Uuid, Path, description = "the customer")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the customer", body = CustomerView), CustomerErrors)
)]
pub async fn unblock_customer(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<CustomerId>,
) -> Result<Json<CustomerView>, ApiError> {
    Ok(Json(accounts::set_customer_blocked(&state.store, &state.auth.settings, &operator, id, false).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PaymentQuery {
    /// Only payments in this state.
    #[param(inline)]
    status: Option<PaymentStatus>,
    customer_id: Option<Uuid>,
    /// Created at or after.
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<TimeBound>,
    /// Created before.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<TimeBound>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The export's filters: the list's, without a page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Only payments in this state.
    #[param(inline)]
    status: Option<PaymentStatus>,
    customer_id: Option<Uuid>,
    /// Created at or after.
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<TimeBound>,
    /// Created before.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<TimeBound>,
}

impl PaymentQuery {
    fn filter(&self) -> PaymentFilter {
        PaymentFilter {
            status: self.status,
            customer: self.customer_id.map(CustomerId),
            period: Period { from: self.date_from, to: self.date_to },
            limit: self.limit,
            offset: self.offset,
        }
    }
}

crate::route_errors! {
    PaymentErrors: Operator, [Query];
    400 => [invalid_page];
}

/// Payment sessions, newest first, each with the charge that settled it (or its latest attempt).
#[utoipa::path(
    get,
    path = "/internal/payments",
    tag = "payments",
    params(PaymentQuery),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "a page of payments, newest first", body = PaymentPage), PaymentErrors)
)]
pub async fn list_payments(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<PaymentQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    Ok(Json(domain::payment::list_payments(&state.store, query.filter()).await?))
}

crate::route_errors! {
    ExportErrors: Operator, [Query];
    400 => [export_too_large];
}

/// Every payment matching the filters as CSV, oldest first, for reconciliation with the
/// provider's statement (columns: docs/CONSOLE.md).
#[utoipa::path(
    get,
    path = "/internal/payments/export",
    tag = "payments",
    params(ExportQuery),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row", content_type = "text/csv", body = String),
        ExportErrors,
    )
)]
pub async fn export_payments(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let filter = PaymentFilter {
        status: query.status,
        customer: query.customer_id.map(CustomerId),
        period: Period { from: query.date_from, to: query.date_to },
        ..PaymentFilter::default()
    };
    let csv = domain::payment::export_payments(&state.store, filter).await?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
        (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"payments.csv\"")),
    ];
    Ok((headers, csv).into_response())
}

crate::route_errors! { OverviewErrors: Operator, [] }

/// What is happening now: mitras online and available, searches, chats; what waits for an
/// operator: failed pairings not actioned, review flags not resolved.
#[utoipa::path(
    get,
    path = "/internal/overview",
    tag = "operations",
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the live counts", body = domain::session::Overview), OverviewErrors)
)]
pub async fn overview(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<domain::session::Overview>, ApiError> {
    Ok(Json(domain::session::overview(&state.store).await?))
}
