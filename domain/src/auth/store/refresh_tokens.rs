//! Reads and writes of refresh tokens (stored as SHA-256 hashes, never in clear).

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::auth::Role;
use crate::ids::{RefreshTokenId, SignInId, UserId};
use crate::store::{Store, StoreError};

pub struct NewRefreshToken {
    pub id: RefreshTokenId,
    pub family_id: SignInId,
    pub role: Role,
    pub owner_id: UserId,
    pub token_hash: Vec<u8>,
    pub ttl_s: u64,
    /// When the sign-in ends whatever its rotations: the token expires at the earlier of
    /// `ttl_s` from now and this.
    pub family_expires_at: DateTime<Utc>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated {
        owner_id: UserId,
        role: Role,
        /// The sign-in (the family), which the new access token belongs to.
        sign_in: SignInId,
    },
    /// The token had been used before: its family is now revoked (its access tokens are
    /// the caller's to revoke).
    Reused { owner_id: UserId, sign_in: SignInId },
    /// Unknown, expired, revoked, of another listener's role, or its account is deactivated.
    Invalid,
}

/// The owning account's column for each role.
const OWNER: &str = "COALESCE(customer_id, mitra_id, cc_user_id)";

#[derive(sqlx::FromRow)]
struct Presented {
    id: Uuid,
    family_id: SignInId,
    role: Role,
    owner_id: UserId,
    used: bool,
    revoked: bool,
    expired: bool,
    owner_deactivated: bool,
    family_expires_at: Option<DateTime<Utc>>,
}

impl Store {
    pub(crate) async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        insert(&mut *self.pg.acquire().await?, token).await
    }

    /// Spends the token with hash `presented` and stores its successor, in one transaction
    /// with the presented row locked: of two concurrent uses one rotates, the other is a reuse.
    /// The successor keeps the family's end (`max_lifetime_s` from now for a family from
    /// before ends were recorded).
    pub(crate) async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        successor: (RefreshTokenId, &[u8]),
        ttl_s: u64,
        max_lifetime_s: u64,
        allowed: &[Role],
    ) -> Result<Rotation, StoreError> {
        let (new_id, new_hash) = successor;
        let roles: Vec<&str> = allowed.iter().map(|role| role.as_str()).collect();
        let mut tx = self.pg.begin().await?;
        let row: Option<Presented> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT t.id, t.family_id, t.role, {OWNER} AS owner_id,
                    t.used_at IS NOT NULL AS used, t.revoked_at IS NOT NULL AS revoked,
                    t.expires_at <= now() AS expired, t.family_expires_at,
                    COALESCE(c.deactivated_at, m.deactivated_at, u.deactivated_at) IS NOT NULL AS owner_deactivated
             FROM refresh_tokens t
             LEFT JOIN customers c ON c.id = t.customer_id
             LEFT JOIN mitras m ON m.id = t.mitra_id
             LEFT JOIN cc_users u ON u.id = t.cc_user_id
             WHERE t.token_hash = $1 AND t.role = ANY($2)
             FOR UPDATE OF t"
        )))
        .bind(presented)
        .bind(&roles)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        let role = row.role;
        if row.revoked || row.expired {
            return Ok(Rotation::Invalid);
        }
        if row.used || row.owner_deactivated {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(row.family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(if row.used {
                Rotation::Reused { owner_id: row.owner_id, sign_in: row.family_id }
            } else {
                Rotation::Invalid
            });
        }
        let successor = NewRefreshToken {
            id: new_id,
            family_id: row.family_id,
            role,
            owner_id: row.owner_id,
            token_hash: new_hash.to_vec(),
            ttl_s,
            family_expires_at: row.family_expires_at.unwrap_or_else(|| family_end(max_lifetime_s)),
        };
        insert(&mut tx, &successor).await?;
        sqlx::query("UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1")
            .bind(row.id)
            .bind(new_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated { owner_id: row.owner_id, role, sign_in: row.family_id })
    }

    /// Revokes the family of the token with hash `presented` when it belongs to `owner_id`
    /// acting as `role`. False when no such token exists for that owner.
    pub(crate) async fn revoke_refresh_family(
        &self,
        presented: &[u8],
        owner_id: UserId,
        role: Role,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH family AS (
                 SELECT family_id FROM refresh_tokens
                 WHERE token_hash = $1 AND role = $2 AND {OWNER} = $3),
             revoked AS (
                 UPDATE refresh_tokens SET revoked_at = now()
                 WHERE family_id IN (SELECT family_id FROM family) AND revoked_at IS NULL)
             SELECT EXISTS (SELECT 1 FROM family)"
        )))
        .bind(presented)
        .bind(role.as_str())
        .bind(owner_id)
        .fetch_one(&self.pg)
        .await?)
    }
}

/// The end of a sign-in that starts now.
pub(crate) fn family_end(max_lifetime_s: u64) -> DateTime<Utc> {
    let lifetime = chrono::Duration::seconds(i64::try_from(max_lifetime_s).unwrap_or(i64::MAX / 1_000_000));
    Utc::now().checked_add_signed(lifetime).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

async fn insert(conn: &mut sqlx::PgConnection, token: &NewRefreshToken) -> Result<(), StoreError> {
    let ttl_s = i64::try_from(token.ttl_s).unwrap_or(i64::MAX / 2) as f64;
    sqlx::query(
        "INSERT INTO refresh_tokens
             (id, family_id, role, customer_id, mitra_id, cc_user_id, token_hash, expires_at, family_expires_at)
         VALUES ($1, $2, $3,
                 CASE WHEN $3 = 'customer' THEN $4 END,
                 CASE WHEN $3 = 'mitra' THEN $4 END,
                 CASE WHEN $3 = 'cc' THEN $4 END,
                 $5, LEAST(now() + make_interval(secs => $6), $7), $7)",
    )
    .bind(token.id)
    .bind(token.family_id)
    .bind(token.role.as_str())
    .bind(token.owner_id)
    .bind(&token.token_hash)
    .bind(ttl_s)
    .bind(token.family_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}
