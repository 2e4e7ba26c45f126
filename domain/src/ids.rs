//! The ids of the marketplace's things, one type each, so a request id cannot be passed where
//! a mitra's is expected (`accept_request(request, mitra, cap)` with the two swapped does not
//! compile). Each is a UUID on the wire, in Postgres (`sqlx(transparent)`) and in the OpenAPI
//! documents; `From<Uuid>` and `.0` cross to code that still takes a bare `Uuid`.

use uuid::Uuid;

macro_rules! ids {
    ($( $(#[$meta:meta])* $name:ident; )+) => {
        $(
            $(#[$meta])*
            #[derive(
                Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                serde::Serialize, serde::Deserialize, sqlx::Type, utoipa::ToSchema,
            )]
            #[serde(transparent)]
            #[sqlx(transparent)]
            pub struct $name(pub Uuid);

            impl From<Uuid> for $name {
                fn from(id: Uuid) -> Self {
                    Self(id)
                }
            }

            impl From<$name> for Uuid {
                fn from(id: $name) -> Self {
                    id.0
                }
            }

            impl std::str::FromStr for $name {
                type Err = uuid::Error;

                fn from_str(text: &str) -> Result<Self, Self::Err> {
                    Uuid::parse_str(text).map(Self)
                }
            }

            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    self.0.fmt(f)
                }
            }
        )+
    };
}

ids! {
    /// A customer's account.
    CustomerId;
    /// A mitra's account.
    MitraId;
    /// A payment session.
    PaymentId;
    /// A pairing request (a search: a general blast or a returning chat).
    RequestId;
    /// A chat session.
    SessionId;
    /// An extension request.
    ExtensionId;
    /// A chat message.
    MessageId;
    /// A row of the failed-pairings ledger.
    FailureId;
    /// Any account, whatever its role: a token's subject, the owner of an event stream, of
    /// a socket, of a device. A customer's, a mitra's or an operator's id turns into one.
    UserId;
    /// A control-center account (`cc_users`).
    OperatorId;
    /// A sign-in: one refresh-token family and every access token it issued.
    SignInId;
    /// One access token (its `jti`).
    TokenId;
    /// One attempt to charge a payment (`charges`).
    ChargeId;
    /// A one-time code sent to a phone.
    OtpCodeId;
    /// A timer probe (`bestie timers-probe`).
    ProbeId;
    /// One refresh token of a sign-in (each rotation makes a new one).
    RefreshTokenId;
    /// A mitra flagged for review (`mitra_review_flags`).
    ReviewFlagId;
}

/// A customer, a mitra and an operator are each an account.
macro_rules! accounts {
    ($($role:ident),+) => {
        $(
            impl From<$role> for UserId {
                fn from(id: $role) -> Self {
                    Self(id.0)
                }
            }
        )+
    };
}

accounts!(CustomerId, MitraId, OperatorId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_on_the_wire_and_in_the_schema() {
        let id = RequestId(Uuid::from_u128(7));
        assert_eq!(serde_json::to_value(id).expect("json"), serde_json::json!(id.0.to_string()));
        assert_eq!(id.to_string(), id.0.to_string());
        let schema = serde_json::to_value(<RequestId as utoipa::PartialSchema>::schema()).expect("schema");
        assert_eq!(
            (&schema["type"], &schema["format"]),
            (&serde_json::json!("string"), &serde_json::json!("uuid"))
        );
    }
}
