//! Extensions: more time for a running (or just timed-out) session, paid into its own
//! payment session (never a free trial) and charged only when approved.
//!
//! The mitra answers within `extension_timeout_seconds`; when the window ends unanswered,
//! `extension_default_action_on_timeout` applies, except that a mitra who is offline,
//! disconnected or not heard from since the request (a suspended app, a lost network) always
//! means a rejection (and so does one who is offline when it is asked).
//! The charge runs under the extension's lock with the key `extension:<id>`, so an approval
//! racing the timer charges once; a declined charge rejects the extension.

pub mod store;

use crate::ids::MitraId;
use crate::ids::UserId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app_config;
use crate::auth::{Principal, Role};
use crate::charges::{self, ChargeError, ChargeRequest};
use crate::chat::store::ClosureKind;
use crate::chat::store::SessionStatus;
use crate::error::{DomainError, ErrorKind};
use crate::event::{ClosingData, Event, ExtensionRequestedData, ExtensionResolvedData, ResumedData};
use crate::extension::store::PendingExtension;
pub use crate::extension::store::{ExtensionReason, ExtensionRow, ExtensionStatus, Resolved};
use crate::ids::{ExtensionId, PaymentId, SessionId};
use crate::jobs::{Timer, TimerKind};
use crate::payment::store::PaymentStatus;
use crate::push::PushMessage;
use crate::services::{Notice, Services};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error("no such chat session of yours")]
    SessionNotFound,
    #[error("the session cannot be extended now ({0})")]
    SessionNotExtendable(SessionStatus),
    #[error("no such payment session of yours")]
    PaymentNotFound,
    #[error("the payment is not a pending extension payment of this session ({})", .0.map_or("not_for_this_session", PaymentStatus::as_str))]
    PaymentNotUsable(Option<PaymentStatus>),
    #[error("an extension of this session is already waiting for the mitra")]
    AlreadyPending,
    #[error("no such extension request for you")]
    NotFound,
    #[error("the extension request was already resolved ({0})")]
    Resolved(ExtensionStatus),
    #[error(transparent)]
    Charge(#[from] ChargeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ExtensionError {
    fn code(&self) -> &'static str {
        match self {
            Self::SessionNotFound => "chat_session_not_found",
            Self::SessionNotExtendable(_) => "chat_session_not_extendable",
            Self::PaymentNotFound => "payment_session_not_found",
            Self::PaymentNotUsable(_) => "extension_payment_not_usable",
            Self::AlreadyPending => "extension_pending",
            Self::NotFound => "extension_not_found",
            Self::Resolved(_) => "extension_resolved",
            Self::Charge(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::SessionNotFound | Self::PaymentNotFound | Self::NotFound => ErrorKind::NotFound,
            Self::Charge(e) => e.kind(),
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Conflict,
        }
    }

    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Self::SessionNotExtendable(status) => vec![("status", json!(status))],
            Self::Resolved(status) => vec![("status", json!(status))],
            // `None`: a payment of another session or purpose.
            Self::PaymentNotUsable(state) => {
                vec![("payment_status", json!(state.map_or("not_for_this_session", PaymentStatus::as_str)))]
            }
            _ => Vec::new(),
        }
    }
}

/// An extension request as both parties see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExtensionView {
    pub id: Uuid,
    pub session_id: Uuid,
    /// The extension payment, charged only when the extension is approved.
    pub payment_session_id: Uuid,
    #[schema(minimum = 1, maximum = 240)]
    pub duration_minutes: i32,
    pub status: ExtensionStatus,
    pub resolution_reason: Option<ExtensionReason>,
    pub requested_at: DateTime<Utc>,
    /// When the mitra's window ends and the configured default applies.
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&ExtensionRow> for ExtensionView {
    fn from(extension: &ExtensionRow) -> Self {
        Self {
            id: extension.id.0,
            session_id: extension.chat_session_id.0,
            payment_session_id: extension.payment_session_id.0,
            duration_minutes: extension.duration_minutes,
            status: extension.status,
            resolution_reason: extension.resolution_reason,
            requested_at: extension.requested_at,
            expires_at: extension.expires_at,
            resolved_at: extension.resolved_at,
        }
    }
}

/// `GET /api/shared/chat-sessions/{id}/extension`: the session's extension request that
/// waits for the mitra, for either party (an app that resumed shows the overlay again).
pub async fn pending(
    store: &crate::store::Store,
    caller: &Principal,
    session: SessionId,
) -> Result<Option<ExtensionRow>, ExtensionError> {
    if store.chat_session_for(caller, session).await?.is_none() {
        return Err(ExtensionError::SessionNotFound);
    }
    Ok(store.pending_extension(session).await?)
}

fn ms(at: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or_default()
}

/// `POST /api/client/chat-sessions/{id}/extension`: asks the mitra for more time.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn request(
    services: &Services,
    customer: &Principal,
    session: SessionId,
    payment: PaymentId,
) -> Result<ExtensionRow, ExtensionError> {
    let store = &services.store;
    let window_s = app_config::get(store, app_config::EXTENSION_TIMEOUT_SECONDS).await?;
    let (extension, mitra) =
        store.request_extension(customer.customer_id(), session, payment, window_s).await?;
    tracing::info!(
        session_id = %extension.chat_session_id,
        extension_id = %extension.id,
        duration_minutes = extension.duration_minutes,
        "extension requested"
    );
    let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
    let online = store.mitra_presence(MitraId(mitra), cap).await.map(|p| p.online).unwrap_or(false);
    if !online {
        // Nobody to ask: rejected at once, nothing charged.
        let pending = match store.lock_extension(extension.id, None).await {
            Ok(pending) => pending,
            Err(ExtensionError::Store(e)) => return Err(e.into()),
            // Resolved meanwhile.
            Err(_) => return Ok(extension),
        };
        let rejected = reject_unless_charged(
            services,
            pending,
            ExtensionStatus::AutoRejected,
            ExtensionReason::MitraOffline,
        )
        .await?;
        return Ok(rejected.extension);
    }
    let timer =
        Timer { kind: TimerKind::ExpireExtension, key: extension.id.0, due_at_ms: ms(extension.expires_at) };
    if let Err(error) = services.jobs.schedule(timer).await {
        tracing::warn!(%error, "the extension timer could not be queued; the sweep will resolve it");
    }
    let countdown_s = (extension.expires_at - chrono::Utc::now()).num_seconds().max(0);
    let event = Event::ExtensionRequested(ExtensionRequestedData {
        extension_id: extension.id,
        session_id: extension.chat_session_id,
        duration_minutes: extension.duration_minutes,
        expires_at: extension.expires_at,
        countdown_s,
    });
    let push = PushMessage {
        title: "Permintaan perpanjangan".into(),
        body: format!("Customer ingin menambah {} menit", extension.duration_minutes),
        data: [
            ("type".to_owned(), "extension_requested".to_owned()),
            ("chat_session_id".to_owned(), extension.chat_session_id.to_string()),
            ("extension_id".to_owned(), extension.id.to_string()),
        ]
        .into(),
        collapse_key: Some(format!("chat:{}", extension.chat_session_id)),
        preview: None,
    };
    services
        .notify(vec![
            Notice { role: Role::Mitra, user: UserId(mitra), event: event.clone(), push: Some(push) },
            Notice { role: Role::Customer, user: customer.id, event, push: None },
        ])
        .await;
    Ok(extension)
}

/// The mitra's answer.
#[tracing::instrument(skip_all, fields(extension_id = %extension))]
pub async fn answer(
    services: &Services,
    mitra: &Principal,
    extension: ExtensionId,
    approve: bool,
) -> Result<Resolved, ExtensionError> {
    let pending = services.store.lock_extension(extension, Some(mitra.mitra_id())).await?;
    if approve {
        resolve_approve(services, pending, ExtensionStatus::Approved).await
    } else {
        reject_unless_charged(services, pending, ExtensionStatus::Rejected, ExtensionReason::MitraRejected)
            .await
    }
}

/// Whether the mitra could have seen a request made at `requested_ms`: online (the switch
/// on and a socket on a live hub) and their app heard from since (a pong to the hub's
/// pings every few seconds is enough). A socket that lingers after the phone suspended the
/// app or lost its network does not count. Unknown (Redis unreadable) counts as absent.
async fn mitra_present(store: &crate::store::Store, mitra: MitraId, cap: i64, requested_ms: u64) -> bool {
    let online = store.mitra_presence(mitra, cap).await.map(|p| p.online).unwrap_or(false);
    online
        && store
            .last_heard_ms(UserId::from(mitra))
            .await
            .ok()
            .flatten()
            .is_some_and(|heard| heard >= requested_ms)
}

/// The window's timer (or the sweep): the configured default applies, unless the mitra is
/// offline, disconnected or not heard from since the request, which always rejects. Does
/// nothing when it was resolved.
#[tracing::instrument(skip_all, fields(extension_id = %extension))]
pub async fn window_ended(services: &Services, extension: ExtensionId) -> Result<(), ExtensionError> {
    for _ in 0..5 {
        let pending = match services.store.lock_extension(extension, None).await {
            Ok(pending) => pending,
            Err(ExtensionError::Store(e)) => return Err(e.into()),
            // Resolved already, or gone.
            Err(_) => return Ok(()),
        };
        if pending.window_left_ms > 0 {
            let left = u64::try_from(pending.window_left_ms).unwrap_or(0).clamp(1, 5_000);
            pending.release().await?;
            tokio::time::sleep(std::time::Duration::from_millis(left)).await;
            continue;
        }
        let store = &services.store;
        let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
        let requested_ms = u64::try_from(pending.extension.requested_at.timestamp_millis()).unwrap_or(0);
        let online = mitra_present(store, pending.mitra_id, cap, requested_ms).await;
        let default = app_config::get(store, app_config::EXTENSION_DEFAULT_ACTION_ON_TIMEOUT).await?;
        if online && default == app_config::ExtensionTimeoutAction::AutoApprove {
            resolve_approve(services, pending, ExtensionStatus::AutoApproved).await?;
        } else {
            let reason = if online { ExtensionReason::Timeout } else { ExtensionReason::MitraOffline };
            reject_unless_charged(services, pending, ExtensionStatus::AutoRejected, reason).await?;
        }
        return Ok(());
    }
    Ok(())
}

/// Rejects, unless an approval got as far as the charge (it succeeded, or its outcome is
/// unknown) and then died: that approval is finished instead, so a customer who paid gets
/// the time.
async fn reject_unless_charged(
    services: &Services,
    pending: PendingExtension,
    status: ExtensionStatus,
    reason: ExtensionReason,
) -> Result<Resolved, ExtensionError> {
    let key = format!("extension:{}", pending.extension.id);
    match services.store.charge_status(&key).await?.as_deref() {
        Some("succeeded" | "pending") => resolve_approve(services, pending, ExtensionStatus::Approved).await,
        _ => resolve_reject(services, pending, status, reason).await,
    }
}

async fn resolve_approve(
    services: &Services,
    pending: PendingExtension,
    status: ExtensionStatus,
) -> Result<Resolved, ExtensionError> {
    if !pending.payment_usable {
        // The customer cancelled it, or it expired: nothing may be charged.
        return resolve_reject(
            services,
            pending,
            ExtensionStatus::AutoRejected,
            ExtensionReason::PaymentUnavailable,
        )
        .await;
    }
    let request = ChargeRequest {
        idempotency_key: format!("extension:{}", pending.extension.id),
        payment_session_id: pending.extension.payment_session_id.0,
        amount: pending.amount,
    };
    match charges::charge(&services.store, services.payments.as_ref(), &request).await {
        Ok(_) => {}
        Err(ChargeError::Declined(reason)) => {
            tracing::info!(%reason, "extension charge declined");
            return resolve_reject(
                services,
                pending,
                ExtensionStatus::Rejected,
                ExtensionReason::PaymentDeclined,
            )
            .await;
        }
        // Left pending: an answer or the timer retries with the same key.
        Err(error) => {
            pending.release().await?;
            return Err(error.into());
        }
    }
    let resolved = pending.approve(status).await?;
    tracing::info!(
        session_id = %resolved.extension.chat_session_id,
        extension_id = %resolved.extension.id,
        %status,
        ends_at = %resolved.ends_at,
        "extension approved; chat session resumed"
    );
    services.metrics.payment_transitions.with_label_values(&[PaymentStatus::Consumed.as_str()]).inc();
    crate::session::schedule_end(services, resolved.extension.chat_session_id, resolved.ends_at).await;
    announce(services, &resolved).await;
    let data = ResumedData { session_id: resolved.extension.chat_session_id, ends_at: resolved.ends_at };
    tell_both(services, &resolved, Event::SessionResumed(data)).await;
    Ok(resolved)
}

async fn resolve_reject(
    services: &Services,
    pending: PendingExtension,
    status: ExtensionStatus,
    reason: ExtensionReason,
) -> Result<Resolved, ExtensionError> {
    let grace = app_config::get(&services.store, app_config::CLOSING_GRACE_MINUTES).await?;
    let resolved = pending.reject(status, reason, grace).await?;
    tracing::info!(
        session_id = %resolved.extension.chat_session_id,
        extension_id = %resolved.extension.id,
        %status,
        %reason,
        "extension not granted"
    );
    announce(services, &resolved).await;
    if resolved.session_status == SessionStatus::Closing {
        if let Some(grace_ends_at) = resolved.grace_ends_at {
            let timer = Timer {
                kind: TimerKind::CompleteSession,
                key: resolved.extension.chat_session_id.0,
                due_at_ms: ms(grace_ends_at),
            };
            if let Err(error) = services.jobs.schedule(timer).await {
                tracing::warn!(%error, "the grace timer could not be queued; the sweep will complete it");
            }
        }
        let data = ClosingData {
            session_id: resolved.extension.chat_session_id,
            reason: ClosureKind::TimeUp,
            by: None,
            grace_ends_at: resolved.grace_ends_at,
            can_extend: true,
        };
        tell_both(services, &resolved, Event::SessionClosing(data)).await;
    }
    Ok(resolved)
}

async fn announce(services: &Services, resolved: &Resolved) {
    let extension = &resolved.extension;
    let data = ExtensionResolvedData {
        extension_id: extension.id,
        session_id: extension.chat_session_id,
        outcome: extension.status,
        reason: extension.resolution_reason,
        ends_at: resolved.ends_at,
    };
    tell_both(services, resolved, Event::ExtensionResolved(data)).await;
}

async fn tell_both(services: &Services, resolved: &Resolved, event: Event) {
    services
        .notify(vec![
            Notice {
                role: Role::Customer,
                user: UserId::from(resolved.customer_id),
                event: event.clone(),
                push: None,
            },
            Notice { role: Role::Mitra, user: UserId::from(resolved.mitra_id), event, push: None },
        ])
        .await;
}
