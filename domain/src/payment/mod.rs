//! Payment sessions: what a customer pays before a chat or an extension.
//!
//! States: pending → confirmed → consumed | failed_pairing; pending → abandoned | expired.
//! Expiry is checked inline at every transition (under the row lock) and closed by the
//! session's own timer, with the 60 s sweep as the backstop. A confirm charges the provider
//! under the idempotency key `confirm:<id>:<attempt>`: the charge is claimed in the ledger under the
//! row lock (from then on the payment never expires), the provider is called without a lock
//! held, then the payment is confirmed. A double confirm charges once; a confirm retried
//! after a crash completes the same charge, and so does the repair sweep when nobody
//! retried it ([`finish_stale_charges`]).

mod ledger;
pub mod store;

pub use ledger::{
    CSV_HEADER, ChargeLine, LedgerError, PaymentFilter, PaymentLine, PaymentPage, export_payments,
    latest_payments_of, list_payments,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app_config;
use crate::auth::Principal;
use crate::charges::{self, ChargeError, ChargeRequest};
use crate::chat::store::SessionStatus;
use crate::error::{DomainError, ErrorKind};
use crate::ids::{CustomerId, MitraId, PaymentId, SessionId};
use crate::jobs::{JobError, Timer, TimerKind};
use crate::payment::store::NewPayment;
pub use crate::payment::store::{PaymentPurpose, PaymentRow, PaymentStatus, SweepCounts};
use crate::services::Services;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("give either tier_id or duration_minutes")]
    TierRequired,
    #[error("no price tier matches")]
    UnknownTier,
    #[error("purpose must be chat or extension")]
    InvalidPurpose,
    #[error("an extension payment needs chat_session_id, and only an extension takes one")]
    ChatSessionMismatch,
    #[error("no such chat session, or it has ended")]
    ChatSessionNotExtendable,
    #[error("a returning chat can only target a bestie you have talked to")]
    UnknownTargetedMitra,
    #[error("an extension cannot target a mitra")]
    ExtensionNotTargeted,
    #[error("no such payment session")]
    NotFound,
    #[error("the payment session has expired")]
    Expired,
    #[error("the payment session was abandoned")]
    Abandoned,
    #[error("the payment session is {0}; only a pending one can be cancelled")]
    NotPending(String),
    #[error("the free trial is already in use")]
    FreeTrialUsed,
    #[error("an extension payment is charged when the mitra approves the extension, not confirmed")]
    ChargedOnApproval,
    #[error(transparent)]
    Charge(#[from] ChargeError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for PaymentError {
    fn code(&self) -> &'static str {
        match self {
            Self::TierRequired => "tier_required",
            Self::UnknownTier => "unknown_tier",
            Self::InvalidPurpose => "invalid_purpose",
            Self::ChatSessionMismatch => "chat_session_mismatch",
            Self::ChatSessionNotExtendable => "chat_session_not_extendable",
            Self::UnknownTargetedMitra => "unknown_targeted_mitra",
            Self::ExtensionNotTargeted => "extension_not_targeted",
            Self::NotFound => "payment_session_not_found",
            Self::Expired => "payment_session_expired",
            Self::Abandoned => "payment_session_abandoned",
            Self::NotPending(_) => "payment_session_not_pending",
            Self::FreeTrialUsed => "free_trial_used",
            Self::ChargedOnApproval => "extension_charged_on_approval",
            Self::Charge(e) => e.code(),
            Self::Job(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::TierRequired
            | Self::InvalidPurpose
            | Self::ChatSessionMismatch
            | Self::ExtensionNotTargeted => ErrorKind::Invalid,
            Self::UnknownTier
            | Self::ChatSessionNotExtendable
            | Self::UnknownTargetedMitra
            | Self::NotFound => ErrorKind::NotFound,
            Self::Expired
            | Self::Abandoned
            | Self::NotPending(_)
            | Self::FreeTrialUsed
            | Self::ChargedOnApproval => ErrorKind::Conflict,
            Self::Charge(e) => e.kind(),
            Self::Job(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

/// What the customer asks to pay for.
#[derive(Clone, Debug, Default)]
pub struct PaymentOrder {
    pub tier_id: Option<String>,
    pub duration_minutes: Option<i32>,
    pub targeted_mitra_id: Option<Uuid>,
    /// `chat` (default) or `extension`.
    pub purpose: Option<String>,
    pub chat_session_id: Option<Uuid>,
}

/// A payment session as its customer sees it. Amounts are whole rupiah.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub status: PaymentStatus,
    #[schema(minimum = 0)]
    pub amount: i64,
    pub is_free_trial: bool,
    #[schema(minimum = 1, maximum = 240)]
    pub duration_minutes: i32,
    pub tier_id: Option<String>,
    pub purpose: PaymentPurpose,
    /// The mitra of a returning chat ("Curhat lagi").
    pub targeted_mitra_id: Option<Uuid>,
    /// The session an extension pays for, or the session a consumed chat payment started.
    pub chat_session_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&PaymentRow> for PaymentView {
    fn from(payment: &PaymentRow) -> Self {
        Self {
            id: payment.id.0,
            status: payment.status,
            amount: payment.amount,
            is_free_trial: payment.is_free_trial,
            duration_minutes: payment.duration_minutes,
            tier_id: payment.tier_id.clone(),
            purpose: payment.purpose,
            targeted_mitra_id: payment.targeted_mitra_id.map(Uuid::from),
            chat_session_id: payment.chat_session_id.map(Uuid::from),
            created_at: payment.created_at,
            expires_at: payment.expires_at,
            confirmed_at: payment.confirmed_at,
            consumed_at: payment.consumed_at,
            resolved_at: payment.resolved_at,
        }
    }
}

/// What a customer would pay now (`GET /api/client/pricing`): whether their next chat is the
/// free trial, and the tiers (a chat's price when it is not the trial; an extension's always).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Pricing {
    pub free_trial: FreeTrial,
    pub tiers: Vec<app_config::PriceTier>,
}

/// The free trial, for this customer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FreeTrial {
    /// The operators offer a free trial (`free_trial_enabled`).
    pub enabled: bool,
    /// This customer's next chat payment is the trial: amount 0 and `duration_minutes` long,
    /// whatever tier they pick (a trial that found no mitra is given back).
    pub applies: bool,
    #[schema(minimum = 1)]
    pub duration_minutes: i64,
}

/// The prices that apply to `customer` now.
pub async fn pricing(store: &Store, customer: &Principal) -> Result<Pricing, StoreError> {
    let enabled = app_config::get(store, app_config::FREE_TRIAL_ENABLED).await?;
    let applies = enabled && store.free_trial_eligible(customer.customer_id()).await?;
    Ok(Pricing {
        free_trial: FreeTrial {
            enabled,
            applies,
            duration_minutes: app_config::get(store, app_config::FREE_TRIAL_DURATION_MINUTES).await?,
        },
        tiers: app_config::get(store, app_config::PRICE_TIERS).await?,
    })
}

/// Prices an order and opens a pending payment session (expiring after
/// `payment_session_timeout_minutes`). A chat for a customer who never paid before is the
/// free trial (amount 0, `free_trial_duration_minutes` long) while `free_trial_enabled`;
/// an extension never is.
#[tracing::instrument(skip_all, fields(customer_id = %customer.id))]
pub async fn create(
    services: &Services,
    customer: &Principal,
    order: PaymentOrder,
) -> Result<PaymentRow, PaymentError> {
    let store = &services.store;
    let purpose = match order.purpose.as_deref() {
        None => PaymentPurpose::Chat,
        Some(name) => name.parse().map_err(|_| PaymentError::InvalidPurpose)?,
    };
    match (purpose, order.chat_session_id) {
        (PaymentPurpose::Chat, None) | (PaymentPurpose::Extension, Some(_)) => {}
        _ => return Err(PaymentError::ChatSessionMismatch),
    }
    let tiers = app_config::get(store, app_config::PRICE_TIERS).await?;
    let tier = match (&order.tier_id, order.duration_minutes) {
        (Some(id), None) => tiers.iter().find(|t| &t.id == id),
        (None, Some(minutes)) => tiers.iter().find(|t| t.duration_minutes == minutes),
        (Some(id), Some(minutes)) => tiers.iter().find(|t| &t.id == id && t.duration_minutes == minutes),
        (None, None) => return Err(PaymentError::TierRequired),
    }
    .ok_or(PaymentError::UnknownTier)?;
    if let Some(session) = order.chat_session_id {
        if order.targeted_mitra_id.is_some() {
            return Err(PaymentError::ExtensionNotTargeted);
        }
        let status =
            store.customer_session_status(customer.customer_id(), crate::ids::SessionId(session)).await?;
        if status.is_none_or(|status| status == SessionStatus::Completed) {
            return Err(PaymentError::ChatSessionNotExtendable);
        }
    }
    if let Some(mitra) = order.targeted_mitra_id
        && !store.returning_pair_known(customer.customer_id(), crate::ids::MitraId(mitra)).await?
    {
        return Err(PaymentError::UnknownTargetedMitra);
    }
    let trial = purpose == PaymentPurpose::Chat
        && app_config::get(store, app_config::FREE_TRIAL_ENABLED).await?
        && store.free_trial_eligible(customer.customer_id()).await?;
    let (duration_minutes, amount) = if trial {
        let minutes = app_config::get(store, app_config::FREE_TRIAL_DURATION_MINUTES).await?;
        (i32::try_from(minutes).unwrap_or(tier.duration_minutes), 0)
    } else {
        (tier.duration_minutes, tier.price)
    };
    let new = NewPayment {
        customer_id: customer.customer_id(),
        purpose,
        chat_session_id: order.chat_session_id.map(SessionId),
        tier_id: Some(&tier.id),
        duration_minutes,
        amount,
        is_free_trial: trial,
        targeted_mitra_id: order.targeted_mitra_id.map(MitraId),
        timeout_minutes: app_config::get(store, app_config::PAYMENT_SESSION_TIMEOUT_MINUTES).await?,
    };
    let payment = store.insert_payment(&new).await?;
    services.metrics.payment_transitions.with_label_values(&[PaymentStatus::Pending.as_str()]).inc();
    let due_at_ms = u64::try_from(payment.expires_at.timestamp_millis()).unwrap_or_default();
    services
        .jobs
        .schedule(Timer { kind: TimerKind::ExpirePaymentSession, key: payment.id.0, due_at_ms })
        .await?;
    Ok(payment)
}

/// pending → confirmed, charging the amount first (a free trial charges nothing).
/// Idempotent: confirming a confirmed (or later) session returns it without charging.
#[tracing::instrument(skip_all, fields(payment_session_id = %id))]
pub async fn confirm(
    services: &Services,
    customer: &Principal,
    id: PaymentId,
) -> Result<PaymentRow, PaymentError> {
    confirm_for(services, customer.customer_id(), id).await
}

async fn confirm_for(
    services: &Services,
    customer: CustomerId,
    id: PaymentId,
) -> Result<PaymentRow, PaymentError> {
    let lock = services.store.lock_payment(customer, id).await?.ok_or(PaymentError::NotFound)?;
    if lock.row.purpose == PaymentPurpose::Extension {
        lock.release().await?;
        return Err(PaymentError::ChargedOnApproval);
    }
    match lock.row.status {
        PaymentStatus::Pending if lock.past_expiry && lock.claimed_charge.is_none() => {
            lock.close_pending(PaymentStatus::Expired).await?;
            services.metrics.payment_transitions.with_label_values(&[PaymentStatus::Expired.as_str()]).inc();
            Err(PaymentError::Expired)
        }
        PaymentStatus::Pending if lock.row.amount == 0 => {
            let confirmed = lock.confirm().await?;
            services
                .metrics
                .payment_transitions
                .with_label_values(&[PaymentStatus::Confirmed.as_str()])
                .inc();
            Ok(confirmed)
        }
        PaymentStatus::Pending => {
            // A confirm that got as far as the claim (retried, or racing this one) is
            // completed under its key; after a decline, a new attempt gets a new key.
            let idempotency_key = match &lock.claimed_charge {
                Some(key) => key.clone(),
                None => format!("confirm:{id}:{}", lock.declined_charges + 1),
            };
            let request =
                ChargeRequest { idempotency_key, payment_session_id: id.0, amount: lock.row.amount };
            if lock.claimed_charge.is_some() {
                lock.release().await?;
            } else {
                lock.claim_charge(&request.idempotency_key, services.payments.name()).await?;
            }
            charges::charge(&services.store, services.payments.as_ref(), &request).await?;
            let confirmed = services.store.confirm_charged_payment(customer, id).await?;
            if confirmed.status != PaymentStatus::Confirmed {
                // Cannot happen while a claimed charge keeps the payment from expiring or
                // being abandoned; if it ever does, the money must not go unaccounted.
                tracing::error!(status = %confirmed.status, "a charged payment did not end confirmed");
            }
            services
                .metrics
                .payment_transitions
                .with_label_values(&[PaymentStatus::Confirmed.as_str()])
                .inc();
            Ok(confirmed)
        }
        PaymentStatus::Expired => Err(PaymentError::Expired),
        PaymentStatus::Abandoned => Err(PaymentError::Abandoned),
        PaymentStatus::Confirmed | PaymentStatus::Consumed | PaymentStatus::FailedPairing => {
            Ok(lock.release().await?)
        }
    }
}

/// pending → abandoned (the customer left the payment screen). Idempotent.
#[tracing::instrument(skip_all, fields(payment_session_id = %id))]
pub async fn cancel(
    services: &Services,
    customer: &Principal,
    id: PaymentId,
) -> Result<PaymentRow, PaymentError> {
    let lock =
        services.store.lock_payment(customer.customer_id(), id).await?.ok_or(PaymentError::NotFound)?;
    match lock.row.status {
        // A confirm is charging it (or an extension request holds it): not abandoned now.
        PaymentStatus::Pending if lock.claimed_charge.is_some() || lock.extension_pending => {
            lock.release().await?;
            Err(PaymentError::NotPending("being confirmed".to_owned()))
        }
        PaymentStatus::Pending if lock.past_expiry => {
            lock.close_pending(PaymentStatus::Expired).await?;
            Err(PaymentError::Expired)
        }
        PaymentStatus::Pending => {
            let row = lock.close_pending(PaymentStatus::Abandoned).await?;
            services
                .metrics
                .payment_transitions
                .with_label_values(&[PaymentStatus::Abandoned.as_str()])
                .inc();
            Ok(row)
        }
        PaymentStatus::Abandoned => Ok(lock.release().await?),
        PaymentStatus::Expired => Err(PaymentError::Expired),
        other => Err(PaymentError::NotPending(other.as_str().to_owned())),
    }
}

/// How long a confirm charge may stay pending before the sweep finishes it: far longer than
/// any charge call (`payments.timeout_ms`, 5 s by default), so it finishes only confirms that
/// died or were given up. Racing a live confirm would still charge once (one key).
pub const STALE_CHARGE_AFTER_S: u64 = 300;

/// What [`finish_stale_charges`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FinishedCharges {
    /// Charged: the payment is confirmed (unused, it ends in the failure ledger at its
    /// expiry, for a refund, as any confirmed payment does).
    pub confirmed: u64,
    /// Declined: the payment is pending without a claim again, and expires as usual.
    pub declined: u64,
    /// The provider still did not answer (the sweep stops at the first): the next sweep
    /// tries again.
    pub unanswered: u64,
}

/// Finishes confirms whose charge was claimed and never completed (the api died mid-charge,
/// or the provider never answered and the customer did not retry): each is completed as a
/// retried confirm would, under the same idempotency key, so the provider charges at most
/// once. Without this such a payment stays pending for good, possibly charged.
#[tracing::instrument(skip_all)]
pub async fn finish_stale_charges(services: &Services) -> Result<FinishedCharges, StoreError> {
    let mut done = FinishedCharges::default();
    for (customer, id) in services.store.stale_confirm_charges(STALE_CHARGE_AFTER_S, 100).await? {
        match confirm_for(services, customer, id).await {
            Ok(row) if row.status == PaymentStatus::Confirmed => done.confirmed += 1,
            Ok(_) => {}
            Err(PaymentError::Charge(ChargeError::Declined(_))) => done.declined += 1,
            Err(PaymentError::Charge(ChargeError::ProviderUnavailable(_))) => {
                // Still not answering: the rest waits for the next sweep rather than for
                // one timeout each now.
                done.unanswered += 1;
                break;
            }
            Err(PaymentError::Store(error) | PaymentError::Charge(ChargeError::Store(error))) => {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, payment_session_id = %id, "a stale charge could not be finished")
            }
        }
    }
    Ok(done)
}

/// The customer's payment session.
pub async fn get(store: &Store, customer: &Principal, id: PaymentId) -> Result<PaymentRow, PaymentError> {
    store.payment(customer.customer_id(), id).await?.ok_or(PaymentError::NotFound)
}

/// Closes payment sessions whose expiry passed (the 60 s sweep). Idempotent: a second run
/// over the same rows changes nothing.
#[tracing::instrument(skip_all)]
pub async fn sweep_expired(store: &Store) -> Result<SweepCounts, StoreError> {
    store.expire_payment_sessions(None).await
}

/// Closes one payment session at its expiry (its own timer; the sweep is the backstop).
/// Does nothing when the session is not due, already closed, or still in use.
#[tracing::instrument(skip_all, fields(payment_session_id = %id))]
pub async fn expire(store: &Store, id: PaymentId) -> Result<SweepCounts, StoreError> {
    store.expire_payment_sessions(Some(id)).await
}
