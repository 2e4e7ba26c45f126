//! Customers as operators look after them: found by phone, id or name; blocked and
//! unblocked; their payments and chats. Operators see the phone; mitras never do (no mitra
//! route returns it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::store::{AccountTable, CUSTOMER_COLUMNS, CustomerSearch};
use super::{AccountError, MitraRef};
use crate::auth::Principal;
use crate::chat::store::SessionStatus;
use crate::ids::{CustomerId, SessionId, UserId};
use crate::payment::PaymentLine;
use crate::settings::AuthSettings;
use crate::store::Store;

/// How many of a customer's latest payments and chats [`customer_detail`] shows.
pub const DETAIL_ROWS: i64 = 50;

/// A customer as the control center shows them.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct CustomerView {
    pub id: CustomerId,
    /// E.164.
    pub phone: String,
    pub call_name: String,
    pub created_at: DateTime<Utc>,
    /// Set while blocked: sign-in refused, tokens refused, sockets closed.
    pub blocked_at: Option<DateTime<Utc>>,
}

/// A page of customers.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerPage {
    pub rows: Vec<CustomerView>,
    #[schema(minimum = 0)]
    pub total: i64,
}

/// One of a customer's chats.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerChat {
    pub id: SessionId,
    pub mitra: MitraRef,
    pub status: SessionStatus,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Messages sent in it, both sides.
    #[schema(minimum = 0)]
    pub messages: i64,
}

/// A customer with their latest payments and chats (newest first, [`DETAIL_ROWS`] each).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerDetail {
    pub customer: CustomerView,
    pub payments: Vec<PaymentLine>,
    pub chats: Vec<CustomerChat>,
}

/// What a search names: an id, a phone (digits, `+` and separators; a leading `0` is the
/// national prefix, so `0812…` finds `+62812…`), or else part of a call name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lookup {
    Id(uuid::Uuid),
    Phone(String),
    Name(String),
}

fn lookup(query: &str) -> Lookup {
    let query = query.trim();
    if let Ok(id) = query.parse() {
        return Lookup::Id(id);
    }
    let phone_like = query.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    if phone_like && digits.len() >= 3 {
        let national = if query.starts_with('0') { &digits[1..] } else { &digits[..] };
        return Lookup::Phone(national.to_owned());
    }
    Lookup::Name(query.to_owned())
}

/// Customers, newest first; `query` as [`Lookup`] reads it.
pub async fn find_customers(
    store: &Store,
    query: Option<&str>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<CustomerPage, AccountError> {
    let (limit, offset) = crate::page::checked(limit, offset).ok_or(AccountError::InvalidPage)?;
    let search = match query.map(str::trim).filter(|q| !q.is_empty()).map(lookup) {
        Some(Lookup::Id(id)) => CustomerSearch { id: Some(CustomerId(id)), ..CustomerSearch::default() },
        Some(Lookup::Phone(digits)) => {
            CustomerSearch { phone: Some(format!("%{digits}%")), ..CustomerSearch::default() }
        }
        Some(Lookup::Name(name)) => {
            CustomerSearch { name: Some(format!("%{}%", like_literal(&name))), ..CustomerSearch::default() }
        }
        None => CustomerSearch::default(),
    };
    let (rows, total) = store.customers(&search, limit, offset).await?;
    Ok(CustomerPage { rows, total })
}

/// One customer, their latest payments and chats.
pub async fn customer_detail(store: &Store, id: CustomerId) -> Result<CustomerDetail, AccountError> {
    let customer = store.customer(id).await?.ok_or(AccountError::CustomerNotFound)?;
    let payments = crate::payment::latest_payments_of(store, id, DETAIL_ROWS).await?;
    let chats = store.customer_chats(id).await?;
    Ok(CustomerDetail { customer, payments, chats })
}

/// Blocks a customer (sign-in refused, every sign-in ended, sockets closed with 4003) or
/// unblocks them. Idempotent; audited when it changes something. A chat in progress runs
/// to its end (its time is paid for); the customer can no longer write in it.
#[tracing::instrument(skip_all, fields(customer_id = %id, blocked))]
pub async fn set_customer_blocked(
    store: &Store,
    auth: &AuthSettings,
    actor: &Principal,
    id: CustomerId,
    blocked: bool,
) -> Result<CustomerView, AccountError> {
    let customer = store
        .set_account_active(
            actor.operator_id(),
            AccountTable::Customers,
            UserId::from(id),
            !blocked,
            CUSTOMER_COLUMNS,
        )
        .await?
        .ok_or(AccountError::CustomerNotFound)?;
    super::enforce_active(store, auth, UserId::from(id), !blocked).await?;
    Ok(customer)
}

/// `text` matched literally by LIKE (its `%`, `_` and `\` escaped).
pub(crate) fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::{Lookup, lookup};

    #[test]
    fn a_search_names_an_id_a_phone_or_a_name() {
        let id = uuid::Uuid::nil();
        assert_eq!(lookup(&id.to_string()), Lookup::Id(id));
        assert_eq!(lookup("+62 812-3456"), Lookup::Phone("628123456".into()));
        assert_eq!(lookup("0812 3456"), Lookup::Phone("8123456".into()));
        assert_eq!(lookup("12"), Lookup::Name("12".into()));
        assert_eq!(lookup(" Rani 2 "), Lookup::Name("Rani 2".into()));
    }
}
