//! Chat sessions and their messages: sends numbered in order, receipts, history.
//!
//! A send is one transaction: the session row is locked by bumping `last_seq` (so the
//! messages of one session are numbered one at a time, in commit order), then the message is
//! inserted under that number. A resend with the same `(sender, client_msg_id)` finds the
//! stored message; two resends racing each other meet at the unique key, and the loser's
//! transaction (with its number) is rolled back, so numbers have no gaps.

pub(crate) mod send_queue;

use crate::ids::MessageId;
use crate::ids::{SessionId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::chat::ChatError;
use crate::ids::{CustomerId, MitraId};
use crate::store::{Store, StoreError};

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub chat_session_id: SessionId,
    pub seq: i64,
    pub sender_role: Role,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

crate::text_enum::text_enum! {
    /// Why a session started closing (`session_closures.kind`, the `session_closing` event's
    /// `reason`).
    pub enum ClosureKind {
        /// Its time ran out; the customer may still extend it in the grace window.
        TimeUp = "time_up",
        /// One side ended it early.
        EarlyEnd = "early_end",
    }
}

crate::text_enum::text_enum! {
    /// Who started a session's closing (`session_closures.initiated_by`): the system when
    /// its time ran out, a side when it ended early.
    pub enum ClosureInitiator {
        System = "system",
        Customer = "customer",
        Mitra = "mitra",
    }
}

const MESSAGE_COLUMNS: &str =
    "id, chat_session_id, seq, sender_role, sender_id, client_msg_id, body, created_at";

crate::text_enum::text_enum! {
    /// Where a chat session stands: `active` → `closing` (time up or an early end; goodbyes
    /// for the grace window) → `completed`; `active`/`closing` → `extending` while an
    /// extension is asked, back to `active` (approved) or on to `closing`.
    pub enum SessionStatus {
        Active = "active",
        Extending = "extending",
        Closing = "closing",
        Completed = "completed",
    }
}

impl SessionStatus {
    /// Messages may be sent (not yet closing).
    pub(crate) fn is_open(self) -> bool {
        matches!(self, Self::Active | Self::Extending)
    }
}

/// A session as one of its two parties sees it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: SessionId,
    pub customer_id: CustomerId,
    pub mitra_id: MitraId,
    /// The only name a mitra sees of the customer.
    pub customer_call_name: String,
    /// The only name a customer sees of the mitra.
    pub mitra_display_name: String,
    pub status: SessionStatus,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub closing_started_at: Option<DateTime<Utc>>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
    pub customer_delivered_seq: i64,
    pub customer_read_seq: i64,
    pub mitra_delivered_seq: i64,
    pub mitra_read_seq: i64,
    pub customer_closing_message: Option<String>,
    pub mitra_closing_message: Option<String>,
    pub closure_kind: Option<ClosureKind>,
}

pub(crate) const SESSION_SELECT: &str =
    "SELECT s.id, s.customer_id, s.mitra_id, c.call_name AS customer_call_name,
        m.display_name AS mitra_display_name, s.status, s.started_at, s.ends_at, s.closing_started_at,
        s.grace_ends_at, s.completed_at, s.last_seq, s.customer_delivered_seq, s.customer_read_seq,
        s.mitra_delivered_seq, s.mitra_read_seq, x.customer_message AS customer_closing_message,
        x.mitra_message AS mitra_closing_message, x.kind AS closure_kind
     FROM chat_sessions s
     JOIN customers c ON c.id = s.customer_id
     JOIN mitras m ON m.id = s.mitra_id
     LEFT JOIN session_closures x ON x.chat_session_id = s.id";

/// The caller's column in `chat_sessions`: who they are in the session.
fn party_column(caller: &Principal) -> Option<&'static str> {
    match caller.role {
        Role::Customer => Some("customer_id"),
        Role::Mitra => Some("mitra_id"),
        Role::Cc => None,
    }
}

/// The two people of a session, by the names each may see of the other.
#[derive(Clone, Debug)]
pub struct Parties {
    pub id: SessionId,
    pub customer_id: CustomerId,
    pub mitra_id: MitraId,
    pub customer_call_name: String,
    pub mitra_display_name: String,
}

/// A send's outcome: the message, and whether this call stored it (false: a resend).
#[derive(Clone, Debug)]
pub struct Sent {
    pub message: MessageRow,
    pub stored_now: bool,
    pub session: Parties,
}

#[derive(sqlx::FromRow)]
struct StoredMessage {
    #[sqlx(flatten)]
    message: MessageRow,
    customer_id: Uuid,
    mitra_id: Uuid,
    customer_call_name: String,
    mitra_display_name: String,
}

impl StoredMessage {
    fn sent(self) -> Sent {
        let session = Parties {
            id: self.message.chat_session_id,
            customer_id: CustomerId(self.customer_id),
            mitra_id: MitraId(self.mitra_id),
            customer_call_name: self.customer_call_name,
            mitra_display_name: self.mitra_display_name,
        };
        Sent { message: self.message, stored_now: true, session }
    }
}

/// A message to store, one of a batch (see [`Store::send_batch`]).
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub session: SessionId,
    pub sender_id: UserId,
    pub sender_role: Role,
    pub client_msg_id: String,
    pub body: String,
}

impl NewMessage {
    /// What makes a message unique: its sender and `client_msg_id`.
    pub(super) fn key(&self) -> (UserId, String) {
        (self.sender_id, self.client_msg_id.clone())
    }
}

/// Which receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    Delivered,
    Read,
}

impl Store {
    /// The session if `caller` is one of its parties.
    pub(crate) async fn chat_session_for(
        &self,
        caller: &Principal,
        id: SessionId,
    ) -> Result<Option<SessionRow>, StoreError> {
        let Some(column) = party_column(caller) else { return Ok(None) };
        let query = format!("{SESSION_SELECT} WHERE s.id = $1 AND s.{column} = $2");
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(id).bind(caller.id).fetch_optional(&self.pg).await?)
    }

    /// The caller's sessions, newest first, started before `before` (paging).
    pub(crate) async fn chat_sessions_of(
        &self,
        caller: &Principal,
        before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let Some(column) = party_column(caller) else { return Ok(Vec::new()) };
        let query = format!(
            "{SESSION_SELECT} WHERE s.{column} = $1 AND ($2::timestamptz IS NULL OR s.started_at < $2)
             ORDER BY s.started_at DESC LIMIT $3"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query))
            .bind(caller.id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pg)
            .await?)
    }

    /// The customer's session that is not completed, if any (the home screen's card).
    pub(crate) async fn live_session_of_customer(
        &self,
        customer: CustomerId,
    ) -> Result<Option<SessionRow>, StoreError> {
        let query = format!(
            "{SESSION_SELECT} WHERE s.customer_id = $1 AND s.status <> 'completed' ORDER BY s.started_at DESC LIMIT 1"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(customer).fetch_optional(&self.pg).await?)
    }

    /// The mitra's sessions that are not completed, newest first.
    pub(crate) async fn live_sessions_of_mitra(&self, mitra: MitraId) -> Result<Vec<SessionRow>, StoreError> {
        let query = format!(
            "{SESSION_SELECT} WHERE s.mitra_id = $1 AND s.status <> 'completed' ORDER BY s.started_at DESC"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(mitra).fetch_all(&self.pg).await?)
    }

    /// Stores a message from `sender` in the session (numbered next), or finds the one a
    /// previous send with the same `client_msg_id` stored.
    ///
    /// The message joins the process's send queue, which stores the messages waiting at that
    /// moment together, several sessions' in one statement and one commit (see
    /// [`Store::send_batch`]). One the batch did not store (a resend, a refusal, or a batch
    /// that failed as a whole) is then sent alone, which tells which it was.
    pub(crate) async fn send_message(
        &self,
        sender: &Principal,
        session: SessionId,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Sent, ChatError> {
        let Some(column) = party_column(sender) else { return Err(ChatError::SessionNotFound) };
        let message = NewMessage {
            session,
            sender_id: sender.id,
            sender_role: sender.role,
            client_msg_id: client_msg_id.to_owned(),
            body: body.to_owned(),
        };
        if let Some(sent) = self.sends.send(message).await {
            return Ok(sent);
        }
        self.send_message_alone(sender, column, session, client_msg_id, body).await
    }

    /// [`Store::send_message`] in a statement of its own: the session's number is taken and
    /// the message inserted together (a unique-key conflict undoes both). `column` is the
    /// sender's party column (`party_column`).
    async fn send_message_alone(
        &self,
        sender: &Principal,
        column: &str,
        session: SessionId,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Sent, ChatError> {
        let query = format!(
            "WITH s AS (
                 UPDATE chat_sessions SET last_seq = last_seq + 1
                 WHERE id = $1 AND {column} = $2 AND status IN ('active', 'extending')
                 RETURNING id, last_seq, customer_id, mitra_id),
             m AS (
                 INSERT INTO chat_messages (chat_session_id, seq, sender_role, sender_id, client_msg_id, body)
                 SELECT s.id, s.last_seq, $3, $2, $4, $5 FROM s
                 RETURNING {MESSAGE_COLUMNS})
             SELECT m.*, s.customer_id, s.mitra_id, c.call_name AS customer_call_name,
                    mi.display_name AS mitra_display_name
             FROM m, s JOIN customers c ON c.id = s.customer_id JOIN mitras mi ON mi.id = s.mitra_id"
        );
        let stored = sqlx::query_as(AssertSqlSafe(query))
            .bind(session)
            .bind(sender.id)
            .bind(sender.role.as_str())
            .bind(client_msg_id)
            .bind(body)
            .fetch_optional(&self.pg)
            .await;
        let stored: Option<StoredMessage> = match stored {
            Ok(stored) => stored,
            // A twin of this send won: answer with its message.
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("chat_messages_sender_client_msg_key") =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(stored) = stored {
            return Ok(stored.sent());
        }
        // Nothing stored now: a resend (its message exists), or a session that is not open.
        if let Some(existing) = self.message_by_client_id(sender.id, client_msg_id).await? {
            return self.resent(sender, session, existing).await;
        }
        Err(match self.chat_session_for(sender, session).await? {
            Some(row) => ChatError::SessionNotOpen(row.status),
            None => ChatError::SessionNotFound,
        })
    }

    /// Stores the messages that can be stored in one statement and one commit: each is
    /// numbered next in its session (in the order given, within a session), as
    /// [`Store::send_message`] numbers it alone. Answers in the order given: `Some` for a
    /// message stored now; `None` for one the batch left alone (a resend of a stored message,
    /// a session that is not open or not the sender's), which the caller sends alone to learn
    /// which. Fails as a whole when two messages of the batch, or one of it and a message
    /// stored meanwhile, share a sender and a `client_msg_id`; nothing is stored then.
    ///
    /// The sessions are locked in the order of their ids, so batches that meet in several
    /// sessions (other processes') wait for each other rather than deadlock.
    /// Only the tests read it (feature `test-support`).
    #[cfg(feature = "test-support")]
    pub async fn send_batch(&self, messages: &[NewMessage]) -> Result<Vec<Option<Sent>>, StoreError> {
        send_batch(&self.pg, messages).await
    }

    async fn message_by_client_id(
        &self,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<MessageRow>, StoreError> {
        let query = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE sender_id = $1 AND client_msg_id = $2"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query))
            .bind(sender)
            .bind(client_msg_id)
            .fetch_optional(&self.pg)
            .await?)
    }

    async fn resent(
        &self,
        sender: &Principal,
        session: SessionId,
        existing: MessageRow,
    ) -> Result<Sent, ChatError> {
        if existing.chat_session_id != session {
            return Err(ChatError::ClientMsgIdReused);
        }
        let Some(row) = self.chat_session_for(sender, session).await? else {
            return Err(ChatError::SessionNotFound);
        };
        let parties = Parties {
            id: row.id,
            customer_id: row.customer_id,
            mitra_id: row.mitra_id,
            customer_call_name: row.customer_call_name,
            mitra_display_name: row.mitra_display_name,
        };
        Ok(Sent { message: existing, stored_now: false, session: parties })
    }

    /// Messages of the session, by sequence: after `after_seq` ascending, or before
    /// `before_seq` descending (then returned ascending). `None` when the caller is not a
    /// party.
    pub(crate) async fn messages(
        &self,
        caller: &Principal,
        session: SessionId,
        after_seq: Option<i64>,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Option<Vec<MessageRow>>, StoreError> {
        if self.chat_session_for(caller, session).await?.is_none() {
            return Ok(None);
        }
        let mut messages: Vec<MessageRow> = match (after_seq, before_seq) {
            (None, Some(before)) => {
                let query = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_session_id = $1 AND seq < $2
                     ORDER BY seq DESC LIMIT $3"
                );
                sqlx::query_as(AssertSqlSafe(query))
                    .bind(session)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pg)
                    .await?
            }
            (after, before) => {
                let query = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE chat_session_id = $1 AND seq > $2 AND seq < $4
                     ORDER BY seq LIMIT $3"
                );
                sqlx::query_as(AssertSqlSafe(query))
                    .bind(session)
                    .bind(after.unwrap_or(0))
                    .bind(limit)
                    .bind(before.unwrap_or(i64::MAX))
                    .fetch_all(&self.pg)
                    .await?
            }
        };
        messages.sort_by_key(|m| m.seq);
        Ok(Some(messages))
    }

    /// Moves the caller's receipt watermark up to `up_to_seq` (never down, never past the
    /// last message; `read` also counts as delivered). Returns the session after the move,
    /// and whether it moved. `None` when the caller is not a party.
    pub(crate) async fn mark_receipt(
        &self,
        caller: &Principal,
        session: SessionId,
        receipt: Receipt,
        up_to_seq: i64,
    ) -> Result<Option<(SessionRow, bool)>, StoreError> {
        let Some(column) = party_column(caller) else { return Ok(None) };
        let side = if caller.role == Role::Customer { "customer" } else { "mitra" };
        let set = match receipt {
            Receipt::Delivered => {
                format!("{side}_delivered_seq = greatest({side}_delivered_seq, least($3, last_seq))")
            }
            Receipt::Read => format!(
                "{side}_read_seq = greatest({side}_read_seq, least($3, last_seq)),
                 {side}_delivered_seq = greatest({side}_delivered_seq, least($3, last_seq))"
            ),
        };
        let watermark = match receipt {
            Receipt::Delivered => format!("{side}_delivered_seq"),
            Receipt::Read => format!("{side}_read_seq"),
        };
        let query = format!(
            "UPDATE chat_sessions SET {set}
             WHERE id = $1 AND {column} = $2 AND {watermark} < least($3, last_seq) RETURNING id"
        );
        let moved: Option<Uuid> = sqlx::query_scalar(AssertSqlSafe(query))
            .bind(session)
            .bind(caller.id)
            .bind(up_to_seq)
            .fetch_optional(&self.pg)
            .await?;
        Ok(self.chat_session_for(caller, session).await?.map(|row| (row, moved.is_some())))
    }
}

/// [`Store::send_batch`] on a pool (the send queue holds the pool, not the store).
pub(super) async fn send_batch(
    pg: &PgPool,
    messages: &[NewMessage],
) -> Result<Vec<Option<Sent>>, StoreError> {
    let query = format!(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[])
                 WITH ORDINALITY AS i(chat_session_id, sender_id, sender_role, client_msg_id, body, ord)),
         valid AS (
             SELECT i.*, row_number() OVER (PARTITION BY i.chat_session_id ORDER BY i.ord) AS rank,
                    count(*) OVER (PARTITION BY i.chat_session_id) AS n
             FROM input i JOIN chat_sessions s ON s.id = i.chat_session_id
             WHERE CASE i.sender_role WHEN 'customer' THEN s.customer_id WHEN 'mitra' THEN s.mitra_id END
                   = i.sender_id
               AND NOT EXISTS (SELECT 1 FROM chat_messages x
                               WHERE x.sender_id = i.sender_id AND x.client_msg_id = i.client_msg_id)),
         locked AS (
             SELECT id FROM chat_sessions WHERE id IN (SELECT chat_session_id FROM valid)
             ORDER BY id FOR UPDATE),
         s AS (
             UPDATE chat_sessions s SET last_seq = s.last_seq + n.n
             FROM (SELECT chat_session_id, count(*) AS n FROM valid GROUP BY chat_session_id) n
             WHERE s.id = n.chat_session_id AND s.id IN (SELECT id FROM locked)
               AND s.status IN ('active', 'extending')
             RETURNING s.id, s.last_seq, s.customer_id, s.mitra_id),
         m AS (
             INSERT INTO chat_messages (chat_session_id, seq, sender_role, sender_id, client_msg_id, body)
             SELECT v.chat_session_id, s.last_seq - v.n + v.rank, v.sender_role, v.sender_id,
                    v.client_msg_id, v.body
             FROM valid v JOIN s ON s.id = v.chat_session_id
             RETURNING {MESSAGE_COLUMNS})
         SELECT m.*, s.customer_id, s.mitra_id, c.call_name AS customer_call_name,
                mi.display_name AS mitra_display_name
         FROM m JOIN s ON s.id = m.chat_session_id
         JOIN customers c ON c.id = s.customer_id JOIN mitras mi ON mi.id = s.mitra_id"
    );
    let stored: Vec<StoredMessage> = sqlx::query_as(AssertSqlSafe(query))
        .bind(messages.iter().map(|m| m.session).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.sender_id).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.sender_role.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
        .fetch_all(pg)
        .await?;
    let mut stored: std::collections::HashMap<(UserId, String), Sent> = stored
        .into_iter()
        .map(|row| ((row.message.sender_id, row.message.client_msg_id.clone()), row.sent()))
        .collect();
    Ok(messages.iter().map(|m| stored.remove(&m.key())).collect())
}
