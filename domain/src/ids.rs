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
    /// A row of the failed-pairings ledger.
    FailureId;
}

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
