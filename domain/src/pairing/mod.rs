//! Pairing: finding a mitra for a paid chat.
//!
//! - **General blast**: every available mitra is offered the request (a `chat_request`
//!   event, a push when the event found no socket) and gets one activity row; a mitra who
//!   becomes available during the window is offered it too. The first accept wins (the
//!   request row's status guards it in Postgres); the others get `missed` and
//!   `chat_request_taken`. When every mitra offered it declined, it fails at once
//!   (`all_mitras_rejected`); when the window ends, `no_mitra_available`.
//! - **Returning chat** ("Curhat lagi"): one targeted mitra, its own window; offline or full
//!   fails at once (`targeted_mitra_offline`), decline and timeout fail it too. The customer
//!   may then fall back to a general blast on the same payment.
//!
//! The state change is committed first (`pairing::store`), then the events go out: an app
//! that misses an event reads the state (`status`, the payment) when it resumes.

pub mod store;

mod error;
mod views;

pub use error::PairingError;
pub use views::*;

use crate::app_config;
use crate::auth::{Principal, Role};
use crate::capacity::{self, Change};
use crate::error::{DomainError, ErrorKind};
use crate::event::{
    Event, PairedCustomer, PairedData, PairedMitra, PairedSession, PairingFailedData, RequestRef,
};
use crate::failures::FailureCause;
use crate::ids::{MitraId, PaymentId, RequestId, UserId};
use crate::jobs::{Timer, TimerKind};
use crate::pairing::store::{Accept, NewRequest, WindowEnd, WithoutSearch};
pub use crate::pairing::store::{
    Accepted, Cancelled, Declined, Failed, Offer, OfferResponse, RequestRow, RequestState, RequestType,
};
use crate::payment::store::PaymentStatus;
use crate::push::PushMessage;
use crate::services::{Notice, Services};
use crate::store::{Store, StoreError};

/// `GET /api/mitra/chat-requests/open`: the requests offered to `mitra` that are still
/// waiting for their answer, soonest to end first. For an app that opens without an event
/// or a push to go by.
pub async fn open_offers(store: &Store, mitra: &Principal) -> Result<Vec<OfferView>, StoreError> {
    Ok(store.open_offers_of(mitra.mitra_id()).await?.iter().map(OfferView::from).collect())
}

fn due_ms(at: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or_default()
}

/// `POST /api/client/chat-requests`: a general blast for a confirmed payment.
#[tracing::instrument(skip_all, fields(customer_id = %customer.id, payment_session_id = %payment))]
pub async fn start_blast(
    services: &Services,
    customer: &Principal,
    payment: PaymentId,
) -> Result<RequestRow, PairingError> {
    start(services, customer, payment, None, false).await
}

/// `POST /api/client/chat-requests/:payment_session_id/fallback-to-blast`: after a
/// returning chat failed, the same payment runs a general blast (no second charge).
#[tracing::instrument(skip_all, fields(customer_id = %customer.id, payment_session_id = %payment))]
pub async fn fallback_to_blast(
    services: &Services,
    customer: &Principal,
    payment: PaymentId,
) -> Result<RequestRow, PairingError> {
    start(services, customer, payment, None, true).await
}

/// `POST /api/client/chat-requests/returning`: "Curhat lagi" with one mitra. Ignores
/// general availability; fails at once when that mitra is offline or full.
#[tracing::instrument(skip_all, fields(customer_id = %customer.id, payment_session_id = %payment))]
pub async fn start_returning(
    services: &Services,
    customer: &Principal,
    payment: PaymentId,
    mitra: MitraId,
) -> Result<RequestRow, PairingError> {
    start(services, customer, payment, Some(mitra), false).await
}

async fn start(
    services: &Services,
    customer: &Principal,
    payment: PaymentId,
    targeted: Option<MitraId>,
    fallback: bool,
) -> Result<RequestRow, PairingError> {
    let store = &services.store;
    let (window_key, targeted_available, target_sessions) = match targeted {
        None => (app_config::PAIRING_BLAST_TIMEOUT_SECONDS, false, 0),
        Some(mitra) => {
            let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
            let presence = store.mitra_presence(mitra, cap).await?;
            // A mitra already chatting with this customer may take them again at the cap.
            let room = presence.active_sessions < cap
                || store.in_session_with(mitra, customer.customer_id()).await?;
            (
                app_config::RETURNING_CHAT_CONFIRMATION_TIMEOUT_SECONDS,
                presence.online && room,
                presence.active_sessions,
            )
        }
    };
    let new = NewRequest {
        payment,
        customer: customer.customer_id(),
        targeted,
        targeted_available,
        fallback,
        window_s: app_config::get(store, window_key).await?,
    };
    let request = match store.start_pairing_request(&new).await {
        Ok(request) => request,
        Err(refusal) => {
            if matches!(refusal, PairingError::TargetedOffline | PairingError::PaymentExpired) {
                let cause = if matches!(refusal, PairingError::TargetedOffline) {
                    FailureCause::TargetedMitraOffline
                } else {
                    FailureCause::PaymentSessionExpired
                };
                let kind = if targeted.is_some() { RequestType::Returning } else { RequestType::General };
                tracing::info!(payment_session_id = %payment, request_type = %kind, %cause, "search failed");
                services.metrics.pairing_outcomes.with_label_values(&[kind.as_str(), cause.as_str()]).inc();
                services
                    .metrics
                    .payment_transitions
                    .with_label_values(&[PaymentStatus::FailedPairing.as_str()])
                    .inc();
            }
            return Err(refusal);
        }
    };
    if fallback {
        services.metrics.payment_transitions.with_label_values(&[PaymentStatus::Confirmed.as_str()]).inc();
    }
    let timer = Timer {
        kind: TimerKind::ClosePairingRequest,
        key: request.id.0,
        due_at_ms: due_ms(request.expires_at),
    };
    let mitras = match targeted {
        Some(mitra) => vec![(mitra, target_sessions)],
        None => store.available_mitras().await?,
    };
    // The window timer is queued while the offers go out; if queuing fails, the sweep
    // closes the search once its window is over a minute past.
    let (scheduled, offered) =
        tokio::join!(services.jobs.schedule(timer), offer(services, request.id, &mitras));
    if let Err(error) = scheduled {
        tracing::warn!(%error, "the window timer could not be queued; the sweep will close the search");
    }
    let offered = offered?;
    tracing::info!(
        request_id = %request.id,
        payment_session_id = %payment,
        request_type = %request.request_type,
        offered,
        "search started"
    );
    Ok(request)
}

/// Records the offers, then sends each newly offered mitra the `chat_request` event (a push
/// when it found no socket).
async fn offer(
    services: &Services,
    request: RequestId,
    mitras: &[(MitraId, i64)],
) -> Result<usize, PairingError> {
    if mitras.is_empty() {
        return Ok(0);
    }
    let store = &services.store;
    let offered = store.record_offers(request, mitras).await?;
    if offered.is_empty() {
        return Ok(0);
    }
    let Some(offer) = store.offers(&[request]).await?.into_iter().next() else {
        return Ok(0);
    };
    let (event, push) = chat_request(&offer);
    let pushed = services.notify_all(Role::Mitra, &offered, &event, Some(&push)).await;
    // The users offered a request are mitras.
    let pushed: Vec<MitraId> = pushed.into_iter().map(|user| MitraId(user.0)).collect();
    if let Err(error) = store.mark_offers_pushed(request, &pushed).await {
        tracing::warn!(%error, "could not record which offers went out by push");
    }
    Ok(offered.len())
}

/// The `chat_request` event and push of one request.
fn chat_request(offer: &Offer) -> (Event, PushMessage) {
    let event = Event::ChatRequest(OfferView::from(offer));
    let body = if offer.request_type == RequestType::Returning {
        format!("{} ingin curhat lagi denganmu ({} menit)", offer.customer_call_name, offer.duration_minutes)
    } else {
        format!("{} ingin curhat ({} menit)", offer.customer_call_name, offer.duration_minutes)
    };
    let push = PushMessage {
        title: "Permintaan curhat baru".into(),
        body,
        data: [
            ("type".to_owned(), "chat_request".to_owned()),
            ("request_id".to_owned(), offer.request_id.to_string()),
            // The old backend's name for the request id, which its apps read (seed 002).
            ("session_id".to_owned(), offer.request_id.to_string()),
            ("request_type".to_owned(), offer.request_type.as_str().to_owned()),
        ]
        .into(),
        collapse_key: Some(format!("chat_request:{}", offer.request_id)),
        preview: None,
    };
    (event, push)
}

/// A mitra became available (status on, socket connected, a session ended): offers them
/// every open general request they have not seen. Returns how many.
pub async fn offer_open_requests(
    services: &Services,
    mitra: MitraId,
    active_sessions: i64,
) -> Result<usize, StoreError> {
    let store = &services.store;
    let requests = store.offer_open_requests(mitra, active_sessions).await?;
    if requests.is_empty() {
        return Ok(0);
    }
    let offers = store.offers(&requests).await?;
    let notices = offers
        .iter()
        .map(|offer| {
            let (event, push) = chat_request(offer);
            Notice { role: Role::Mitra, user: mitra.into(), event, push: Some(push) }
        })
        .collect();
    services.notify(notices).await;
    Ok(requests.len())
}

/// `POST /api/mitra/chat-requests/:id/accept`. The first accept wins; repeating a won
/// accept returns the same session.
#[tracing::instrument(skip_all, fields(mitra_id = %mitra.id, request_id = %request))]
pub async fn accept(
    services: &Services,
    mitra: &Principal,
    request: RequestId,
) -> Result<Accepted, PairingError> {
    let store = &services.store;
    let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
    let accepted = match store.accept_request(request, mitra.mitra_id(), cap).await? {
        Accept::Won(accepted) => *accepted,
        Accept::AlreadyYours => {
            return store.accepted_by(request, mitra.mitra_id()).await?.ok_or(PairingError::RequestNotFound);
        }
    };
    let kind = accepted.request.request_type.as_str();
    tracing::info!(
        request_id = %request,
        mitra_id = %mitra.id,
        chat_session_id = %accepted.session.id,
        request_type = kind,
        "search accepted; chat session started"
    );
    services.metrics.pairing_outcomes.with_label_values(&[kind, "accepted"]).inc();
    services.metrics.payment_transitions.with_label_values(&[PaymentStatus::Consumed.as_str()]).inc();
    let waited = (accepted.request.resolved_at.unwrap_or_else(chrono::Utc::now)
        - accepted.request.created_at)
        .num_milliseconds();
    services
        .metrics
        .pairing_time_to_accept_seconds
        .with_label_values(&[kind])
        .observe(waited as f64 / 1_000.0);
    let taken = Event::ChatRequestTaken(RequestRef { request_id: request });
    let others = services.notify_all(Role::Mitra, &accepted.missed, &taken, None);
    let paired = services.notify(vec![
        paired_notice(&accepted, Role::Customer, UserId::from(accepted.request.customer_id)),
        paired_notice(&accepted, Role::Mitra, mitra.id),
    ]);
    let sessions = capacity::changed(services, mitra.mitra_id(), Change::SessionStarted { cap });
    let timers = crate::session::schedule_end(services, accepted.session.id, accepted.session.ends_at);
    let (_, _, sessions, ()) = tokio::join!(others, paired, sessions, timers);
    match sessions {
        // A session taken makes no room: nothing is offered.
        Ok(changed) => {
            changed.offer(services).await;
        }
        Err(error) => tracing::warn!(%error, "could not update the mitra's session count in Redis"),
    }
    Ok(accepted)
}

fn paired_notice(accepted: &Accepted, role: Role, user: UserId) -> Notice {
    let session = &accepted.session;
    let mut data = PairedData {
        request_id: accepted.request.id,
        request_type: accepted.request.request_type,
        payment_session_id: accepted.request.payment_session_id,
        chat_session: PairedSession {
            id: session.id,
            started_at: session.started_at,
            ends_at: session.ends_at,
            duration_minutes: accepted.duration_minutes,
        },
        mitra: None,
        customer: None,
    };
    let push = if role == Role::Customer {
        // The customer sees the mitra's display name only; the mitra the customer's call name only.
        data.mitra = Some(PairedMitra {
            id: accepted.request.accepted_mitra_id,
            display_name: accepted.mitra_display_name.clone(),
        });
        Some(PushMessage {
            title: "Bestie ditemukan!".into(),
            body: format!("{} siap mendengarkan ceritamu", accepted.mitra_display_name),
            data: [
                ("type".to_owned(), "paired".to_owned()),
                ("chat_session_id".to_owned(), session.id.to_string()),
            ]
            .into(),
            collapse_key: Some(format!("pairing:{}", accepted.request.payment_session_id)),
            preview: None,
        })
    } else {
        data.customer = Some(PairedCustomer { call_name: accepted.customer_call_name.clone() });
        None
    };
    Notice { role, user, event: Event::Paired(data), push }
}

/// `POST /api/mitra/chat-requests/:id/decline`.
#[tracing::instrument(skip_all, fields(mitra_id = %mitra.id, request_id = %request))]
pub async fn decline(
    services: &Services,
    mitra: &Principal,
    request: RequestId,
) -> Result<Declined, PairingError> {
    let declined = services.store.decline_request(request, mitra.mitra_id()).await?;
    if let Some(failed) = &declined.failed {
        report_failure(services, failed, Event::ChatRequestClosed).await;
    }
    Ok(declined)
}

/// The request's window ended (its timer, or the sweep for a timer that was lost). Does
/// nothing when it was already resolved; waits when the database's clock says the window
/// is still open (the worker's clock ran ahead).
#[tracing::instrument(skip_all, fields(request_id = %request))]
pub async fn close_window(services: &Services, request: RequestId) -> Result<Option<Failed>, StoreError> {
    for _ in 0..5 {
        match services.store.close_request_window(request).await? {
            WindowEnd::Closed(failed) => {
                report_failure(services, &failed, Event::ChatRequestExpired).await;
                return Ok(Some(*failed));
            }
            WindowEnd::NotPending => return Ok(None),
            WindowEnd::NotYet { left_ms } => {
                tokio::time::sleep(std::time::Duration::from_millis(left_ms.clamp(1, 5_000))).await;
            }
        }
    }
    Ok(None)
}

/// Closes pending requests whose window ended over a minute ago: their timer was lost (a
/// process died between the request and its timer). Runs with the repair sweep.
pub async fn close_overdue_windows(services: &Services) -> Result<usize, StoreError> {
    let overdue = services.store.overdue_requests(60).await?;
    let mut closed = 0;
    for request in overdue {
        if close_window(services, request).await?.is_some() {
            closed += 1;
        }
    }
    Ok(closed)
}

/// `POST /api/client/chat-requests/cancel`: the customer stops searching (or, after a
/// returning chat failed, gives up on the payment).
#[tracing::instrument(skip_all, fields(customer_id = %customer.id, payment_session_id = %payment))]
pub async fn cancel(
    services: &Services,
    customer: &Principal,
    payment: PaymentId,
) -> Result<Cancelled, PairingError> {
    let cancelled = services.store.cancel_search(payment, customer.customer_id()).await?;
    if let Some(failed) = &cancelled.request {
        report_failure(services, failed, Event::ChatRequestCancelled).await;
    }
    match cancelled.without_search {
        Some(WithoutSearch::PaymentFailed) => {
            tracing::info!(payment_session_id = %payment, "payment cancelled before its search");
            services
                .metrics
                .payment_transitions
                .with_label_values(&[PaymentStatus::FailedPairing.as_str()])
                .inc();
        }
        Some(WithoutSearch::FallbackDeclined) => {
            tracing::info!(payment_session_id = %payment, "fallback declined; the payment stays failed");
        }
        None => {}
    }
    Ok(cancelled)
}

/// Counts a failed request and tells everyone: the customer (`pairing_failed`, or for a
/// returning chat `returning_chat_rejected` / `returning_chat_timeout`), and each mitra who
/// still had it open (`open`: why it ended for them).
async fn report_failure(services: &Services, failed: &Failed, open: fn(RequestRef) -> Event) {
    let request = &failed.request;
    let kind = request.request_type.as_str();
    tracing::info!(request_id = %request.id, request_type = kind, cause = %failed.cause, "search failed");
    services.metrics.pairing_outcomes.with_label_values(&[kind, failed.cause.as_str()]).inc();
    services.metrics.payment_transitions.with_label_values(&[PaymentStatus::FailedPairing.as_str()]).inc();
    let returning_failed =
        matches!(failed.cause, FailureCause::TargetedMitraRejected | FailureCause::TargetedMitraTimeout);
    let data = PairingFailedData {
        request_id: request.id,
        request_type: request.request_type,
        payment_session_id: request.payment_session_id,
        cause_tag: failed.cause,
        // After a returning chat fails, the same payment may run a general blast.
        fallback_offered: returning_failed,
    };
    let event = match failed.cause {
        FailureCause::TargetedMitraRejected => Event::ReturningChatRejected(data),
        FailureCause::TargetedMitraTimeout => Event::ReturningChatTimeout(data),
        _ => Event::PairingFailed(data),
    };
    let customer_kind = event.kind();
    let push = (failed.cause != FailureCause::CustomerCancelled).then(|| PushMessage {
        title: "Bestie belum tersedia".into(),
        body: "Maaf, kami belum bisa menemukan bestie untukmu.".into(),
        data: [
            ("type".to_owned(), customer_kind.as_str().to_owned()),
            ("payment_session_id".to_owned(), request.payment_session_id.to_string()),
            ("cause_tag".to_owned(), failed.cause.as_str().to_owned()),
        ]
        .into(),
        collapse_key: Some(format!("pairing:{}", request.payment_session_id)),
        preview: None,
    });
    let customer =
        vec![Notice { role: Role::Customer, user: UserId::from(request.customer_id), event, push }];
    let open = open(RequestRef { request_id: request.id });
    // Nobody needs to know who was reached by push here (no activity row records it).
    let _pushed =
        tokio::join!(services.notify(customer), services.notify_all(Role::Mitra, &failed.open, &open, None));
}

/// `GET /api/mitra/chat-requests/:id/status`: only for a mitra who was offered it.
pub async fn status_for_mitra(
    store: &Store,
    mitra: &Principal,
    request: RequestId,
) -> Result<RequestStatus, PairingError> {
    let (row, response) =
        store.request_for_mitra(request, mitra.mitra_id()).await?.ok_or(PairingError::RequestNotFound)?;
    let status = match (row.status, row.failure_cause) {
        (RequestState::Pending, _) if row.expires_at > chrono::Utc::now() => OfferStatus::Pending,
        (RequestState::Pending, _) => OfferStatus::Expired,
        (RequestState::Accepted, _) if row.accepted_mitra_id == Some(mitra.mitra_id()) => {
            OfferStatus::Accepted
        }
        (RequestState::Accepted, _) => OfferStatus::Taken,
        (RequestState::Cancelled, _) => OfferStatus::Cancelled,
        (_, Some(cause)) if cause.is_timeout() => OfferStatus::Expired,
        _ => OfferStatus::Closed,
    };
    Ok(RequestStatus { request: row, status, response })
}

/// The customer's searches for one payment, newest first.
pub async fn requests_of_payment(
    store: &Store,
    customer: &Principal,
    payment: PaymentId,
) -> Result<Vec<RequestRow>, StoreError> {
    store.requests_of_payment(customer.customer_id(), payment).await
}
