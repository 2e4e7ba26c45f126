//! The failed-pairings ledger for operators (internal listener).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use domain::failures::{ActivityReport, ActivitySort, FailureError, FailurePage, FailureView, SortOrder};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use domain::calendar::{Period, TimeBound};
use domain::failures::{OfferFilter, OfferLog};
use domain::pairing::OfferResponse;

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// `refunded`, `credited` or `no_action`.
    #[schema(value_type = domain::failures::OperatorAction)]
    action: String,
}

/// The list's filters as the OpenAPI document shows them; [`parse_filters`] reads them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "parse_filters reads the raw query; this only documents it")]
struct FilterParams {
    /// Only these cause tags: repeat the parameter (`cause_tags` works too).
    #[param(rename = "cause_tags[]", inline)]
    cause_tags: Option<Vec<domain::failures::FailureCause>>,
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<String>,
    /// The same, exclusive. A range that ends before it starts is empty.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<String>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The list's filters. `cause_tags[]` repeats (`?cause_tags[]=a&cause_tags[]=b`), which the
/// usual query extractor cannot read, so the query string is parsed here.
#[derive(Default)]
struct Filters {
    causes: Vec<domain::failures::FailureCause>,
    period: Period,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn bad_query(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

fn parse_filters(query: Option<&str>) -> Result<Filters, ApiError> {
    let mut filters = Filters::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let time = |value: &str| value.parse::<TimeBound>().map_err(|e| bad_query(format!("{name}: {e}")));
        let number =
            |value: &str| value.parse::<i64>().map_err(|_| bad_query(format!("{name}: expected a number")));
        match name.as_ref() {
            "cause_tags[]" | "cause_tags" => filters
                .causes
                .push(value.parse().map_err(|_| FailureError::UnknownCauseTag(value.clone().into_owned()))?),
            "date_from" => filters.period.from = Some(time(&value)?),
            "date_to" => filters.period.to = Some(time(&value)?),
            "limit" => filters.limit = Some(number(&value)?),
            "offset" => filters.offset = Some(number(&value)?),
            other => return Err(bad_query(format!("unknown parameter {other}"))),
        }
    }
    Ok(filters)
}

crate::route_errors! {
    ListErrors: Operator, [Query];
    400 => [unknown_cause_tag, invalid_page];
}

/// The failed pairings, newest first; each row says whether the payment was served after all.
#[utoipa::path(
    get,
    path = "/internal/failed-pairings",
    tag = "failed pairings",
    operation_id = "list_failed_pairings",
    params(FilterParams),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "a page of the ledger, newest first", body = FailurePage), ListErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    _operator: Operator,
    RawQuery(query): RawQuery,
) -> Result<Json<FailurePage>, ApiError> {
    let f = parse_filters(query.as_deref())?;
    let page = domain::failures::list(&state.store, &f.causes, f.period, f.limit, f.offset).await?;
    Ok(Json(page))
}

crate::route_errors! {
    ActionErrors: Operator, [Path, Json];
    400 => [invalid_action];
    404 => [failed_pairing_not_found];
    409 => [already_actioned, payment_served, payment_already_settled];
}

/// Records the operator's action on a row, with the operator and time, once.
#[utoipa::path(
    post,
    path = "/internal/failed-pairings/{id}/action",
    tag = "failed pairings",
    operation_id = "action_failed_pairing",
    params(("id" = Uuid, Path, description = "the ledger row")),
    request_body = Action,
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the row, with the action recorded", body = FailureView), ActionErrors)
)]
pub async fn action(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Action>,
) -> Result<Json<FailureView>, ApiError> {
    let action = body.action.parse().map_err(|_| FailureError::InvalidAction)?;
    let row = domain::failures::action(&state.store, &operator, domain::ids::FailureId(id), action).await?;
    Ok(Json(row))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Default 7 days before `date_to`.
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<TimeBound>,
    /// Exclusive; default now. A range that ends before it starts is empty.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<TimeBound>,
    mitra_id: Option<Uuid>,
    /// A column of the report or `display_name`; default `notified`.
    #[param(value_type = Option<ActivitySort>, inline)]
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(value_type = Option<SortOrder>, inline)]
    order: Option<String>,
}

crate::route_errors! {
    ActivityErrors: Operator, [Query];
    400 => [invalid_sort];
}

/// Per mitra: notified, accepted, rejected, ignored, missed, acceptance rate, average response time.
///
/// Default period: the last 7 days; sorted by `notified`, descending.
#[utoipa::path(
    get,
    path = "/internal/mitra-activity",
    tag = "failed pairings",
    params(ActivityQuery),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "a line per mitra offered anything in the period", body = ActivityReport),
        ActivityErrors,
    )
)]
pub async fn mitra_activity(
    State(state): State<AppState>,
    _operator: Operator,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<ActivityQuery>,
) -> Result<Json<ActivityReport>, ApiError> {
    let report = domain::failures::mitra_activity(
        &state.store,
        Period { from: query.date_from, to: query.date_to },
        query.mitra_id.map(domain::ids::MitraId),
        query.sort.as_deref().map(str::parse).transpose().map_err(|_| FailureError::InvalidSort)?,
        query.order.as_deref().map(str::parse).transpose().map_err(|_| FailureError::InvalidSort)?,
    )
    .await?;
    Ok(Json(report))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OfferQuery {
    /// Default 7 days before `date_to`.
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<TimeBound>,
    /// Exclusive; default now.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<TimeBound>,
    mitra_id: Option<Uuid>,
    /// Only offers answered so.
    #[param(value_type = Option<OfferResponse>, inline)]
    response: Option<String>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

crate::route_errors! {
    OfferLogErrors: Operator, [Query];
    400 => [invalid_page, invalid_response];
}

/// The activity log, an offer a row: when each mitra was notified, what they answered and
/// how fast, how busy they were. Default period: the last 7 days; newest first.
#[utoipa::path(
    get,
    path = "/internal/mitra-activity/log",
    tag = "failed pairings",
    operation_id = "mitra_activity_log",
    params(OfferQuery),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "a page of offers, newest first", body = OfferLog), OfferLogErrors)
)]
pub async fn mitra_activity_log(
    State(state): State<AppState>,
    _operator: Operator,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<OfferQuery>,
) -> Result<Json<OfferLog>, ApiError> {
    let response =
        query.response.as_deref().map(str::parse).transpose().map_err(|_| FailureError::InvalidResponse)?;
    let filter = OfferFilter {
        period: Period { from: query.date_from, to: query.date_to },
        mitra: query.mitra_id.map(domain::ids::MitraId),
        response,
        limit: query.limit,
        offset: query.offset,
    };
    Ok(Json(domain::failures::offer_log(&state.store, filter).await?))
}
