//! Reads and writes of one-time codes, and the customer account a verified code signs in.

use crate::ids::CustomerId;
use crate::ids::OtpCodeId;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::AuthError;
use crate::store::{Store, StoreError};

/// The throttle and lifetime of codes.
pub struct OtpLimits {
    pub ttl_s: u64,
    pub resend_interval_s: u64,
    pub max_per_phone_per_hour: u32,
    pub max_per_address_per_hour: u32,
}

/// The customer a verified code belongs to.
#[derive(Debug, Clone)]
pub struct CustomerAccount {
    pub id: CustomerId,
    pub call_name: String,
    pub deactivated: bool,
}

/// The outcome of checking a code.
#[derive(Debug)]
pub enum OtpCheck {
    NoLiveCode,
    Locked,
    Incorrect { attempts_left: u32 },
    Verified(CustomerAccount),
}

#[derive(sqlx::FromRow)]
struct Recent {
    now: DateTime<Utc>,
    last_at: Option<DateTime<Utc>>,
    phone_count: i64,
    phone_oldest: Option<DateTime<Utc>>,
    address_count: i64,
    address_oldest: Option<DateTime<Utc>>,
}

fn seconds_until(now: DateTime<Utc>, then: DateTime<Utc>) -> u64 {
    let millis = (then - now).num_milliseconds().max(0);
    u64::try_from(millis).unwrap_or(0).div_ceil(1000).max(1)
}

impl Store {
    /// Stores a new code unless the phone or the address is throttled. The throttle is read
    /// and the code written under advisory locks on both, so concurrent requests (from any
    /// process) cannot both slip under a limit.
    pub(crate) async fn insert_otp_code(
        &self,
        phone: &str,
        code_hash: &[u8],
        client_addr: &str,
        limits: &OtpLimits,
    ) -> Result<Uuid, AuthError> {
        let mut tx = self.pg.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('otp:phone:' || $1, 0))")
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('otp:addr:' || $1, 0))")
            .bind(client_addr)
            .execute(&mut *tx)
            .await?;
        let recent: Recent = sqlx::query_as(
            "SELECT now() AS now,
                    (SELECT max(created_at) FROM otp_codes WHERE phone = $1) AS last_at,
                    (SELECT count(*) FROM otp_codes WHERE phone = $1 AND created_at > now() - interval '1 hour') AS phone_count,
                    (SELECT min(created_at) FROM otp_codes WHERE phone = $1 AND created_at > now() - interval '1 hour') AS phone_oldest,
                    (SELECT count(*) FROM otp_codes WHERE client_addr = $2 AND created_at > now() - interval '1 hour') AS address_count,
                    (SELECT min(created_at) FROM otp_codes WHERE client_addr = $2 AND created_at > now() - interval '1 hour') AS address_oldest",
        )
        .bind(phone)
        .bind(client_addr)
        .fetch_one(&mut *tx)
        .await?;
        let hour = chrono::Duration::hours(1);
        let resend =
            chrono::Duration::seconds(i64::try_from(limits.resend_interval_s).unwrap_or(i64::MAX / 2));
        if let Some(last) = recent.last_at
            && last + resend > recent.now
        {
            return Err(AuthError::OtpResendTooSoon {
                retry_after_s: seconds_until(recent.now, last + resend),
            });
        }
        if recent.phone_count >= i64::from(limits.max_per_phone_per_hour) {
            let oldest = recent.phone_oldest.unwrap_or(recent.now);
            return Err(AuthError::OtpRateLimited {
                retry_after_s: seconds_until(recent.now, oldest + hour),
            });
        }
        if recent.address_count >= i64::from(limits.max_per_address_per_hour) {
            let oldest = recent.address_oldest.unwrap_or(recent.now);
            return Err(AuthError::OtpRateLimited {
                retry_after_s: seconds_until(recent.now, oldest + hour),
            });
        }
        let ttl_s = i64::try_from(limits.ttl_s).unwrap_or(i64::MAX / 2);
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO otp_codes (phone, code_hash, client_addr, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             RETURNING id",
        )
        .bind(phone)
        .bind(code_hash)
        .bind(client_addr)
        .bind(ttl_s as f64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn delete_otp_code(&self, id: OtpCodeId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM otp_codes WHERE id = $1").bind(id).execute(&self.pg).await?;
        Ok(())
    }

    /// Checks `code_hash` against the newest code of `phone`, counting a wrong attempt or
    /// spending the code and signing the customer in (created on first sign-in; `call_name`,
    /// when given, replaces the stored one). One transaction with the code row locked, so
    /// concurrent guesses are counted one by one.
    pub(crate) async fn check_otp_code(
        &self,
        phone: &str,
        code_hash: &[u8],
        max_failed_attempts: u32,
        call_name: Option<&str>,
    ) -> Result<OtpCheck, StoreError> {
        let mut tx = self.pg.begin().await?;
        let newest: Option<(Uuid, bool, i32, bool)> = sqlx::query_as(
            "SELECT id, code_hash = $2, failed_attempts, consumed_at IS NULL AND expires_at > now()
             FROM otp_codes WHERE phone = $1
             ORDER BY created_at DESC LIMIT 1
             FOR UPDATE",
        )
        .bind(phone)
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let max = i32::try_from(max_failed_attempts).unwrap_or(i32::MAX);
        let Some((id, matches, failed, live)) = newest else {
            return Ok(OtpCheck::NoLiveCode);
        };
        if !live {
            return Ok(OtpCheck::NoLiveCode);
        }
        if failed >= max {
            return Ok(OtpCheck::Locked);
        }
        if !matches {
            let failed: i32 = sqlx::query_scalar(
                "UPDATE otp_codes SET failed_attempts = failed_attempts + 1 WHERE id = $1 RETURNING failed_attempts",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(OtpCheck::Incorrect { attempts_left: u32::try_from(max - failed).unwrap_or(0) });
        }
        sqlx::query("UPDATE otp_codes SET consumed_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let (id, call_name, deactivated): (Uuid, String, bool) = sqlx::query_as(
            "INSERT INTO customers (phone, call_name) VALUES ($1, COALESCE($2, ''))
             ON CONFLICT (phone) DO UPDATE SET call_name = CASE WHEN customers.deactivated_at IS NULL
                 THEN COALESCE($2, customers.call_name) ELSE customers.call_name END
             RETURNING id, call_name, deactivated_at IS NOT NULL",
        )
        .bind(phone)
        .bind(call_name)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(OtpCheck::Verified(CustomerAccount { id: CustomerId(id), call_name, deactivated }))
    }
}

impl Store {
    /// Whether the customer with this phone is blocked (deactivated).
    pub(crate) async fn phone_blocked(&self, phone: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE phone = $1 AND deactivated_at IS NOT NULL)",
        )
        .bind(phone)
        .fetch_one(&self.pg)
        .await?)
    }
}
