//! The configuration as operators and apps read it, each shape with its OpenAPI schema.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};

use super::{KEYS, KeySpec, PriceTier, ValueType};

/// The kind of value a key holds; the view's `min`, `max` and `values` say more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigType {
    Integer,
    Boolean,
    Enum,
    PriceTiers,
}

/// A key as the control center shows it: its type and range, label, explanation, default
/// and current value.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ConfigType,
    /// An integer's least value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// An integer's greatest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// An enum's values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// In English.
    pub label: String,
    /// In English.
    pub explanation: String,
    /// In Indonesian.
    pub label_id: String,
    /// In Indonesian.
    pub explanation_id: String,
    /// Apps read it through `GET /api/shared/config`.
    pub public: bool,
    /// Of the key's type, as is `value`.
    pub default: Value,
    pub value: Value,
    /// When an operator last set it; none while it holds its default.
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    pub updated_by: Option<uuid::Uuid>,
}

impl KeyView {
    pub(super) fn new(
        spec: &KeySpec,
        value: Value,
        row: Option<&crate::app_config::store::StoredKey>,
    ) -> Self {
        let (value_type, min, max, values) = match spec.value_type {
            ValueType::Integer { min, max } => (ConfigType::Integer, Some(min), Some(max), None),
            ValueType::Boolean => (ConfigType::Boolean, None, None, None),
            ValueType::Enum { values } => {
                (ConfigType::Enum, None, None, Some(values.iter().map(|v| (*v).to_owned()).collect()))
            }
            ValueType::PriceTiers => (ConfigType::PriceTiers, None, None, None),
        };
        Self {
            key: spec.key.to_owned(),
            value_type,
            min,
            max,
            values,
            label: spec.label.to_owned(),
            explanation: spec.explanation.to_owned(),
            label_id: spec.label_id.to_owned(),
            explanation_id: spec.explanation_id.to_owned(),
            public: spec.public,
            default: spec.default_value(),
            value,
            updated_at: row.map(|row| row.updated_at),
            updated_by: row.and_then(|row| row.updated_by),
        }
    }
}

/// Every key, in the order the settings page shows them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConfigKeys {
    pub keys: Vec<KeyView>,
}

/// The operator who made a change.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChangedBy {
    /// None once the operator's account is gone.
    pub id: Option<uuid::Uuid>,
    pub email: Option<String>,
}

/// One change of the audit trail. A value is none where the key had none stored.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub key: String,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
    pub changed_by: ChangedBy,
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

impl From<crate::app_config::store::ConfigChange> for ChangeView {
    fn from(change: crate::app_config::store::ConfigChange) -> Self {
        Self {
            key: change.key,
            old_value: change.old_value,
            new_value: change.new_value,
            changed_by: ChangedBy { id: change.changed_by, email: change.changed_by_email },
            changed_at: change.changed_at,
        }
    }
}

/// The configuration's audit trail, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConfigChanges {
    pub changes: Vec<ChangeView>,
}

/// The keys apps may read (`public`) with their current values: `GET /api/shared/config`.
/// Its schema lists each key with its type and range, from the registry.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct PublicConfig(pub serde_json::Map<String, Value>);

impl utoipa::PartialSchema for PublicConfig {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
        for spec in KEYS.iter().filter(|spec| spec.public) {
            object = object.property(spec.key, value_schema(spec)).required(spec.key);
        }
        object.into()
    }
}

impl ToSchema for PublicConfig {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((PriceTier::name().into(), <PriceTier as utoipa::PartialSchema>::schema()));
    }
}

/// A key's value as the registry types it.
fn value_schema(spec: &KeySpec) -> RefOr<Schema> {
    let described = |builder: ObjectBuilder| builder.description(Some(spec.explanation)).into();
    match spec.value_type {
        ValueType::Integer { min, max } => {
            described(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min)).maximum(Some(max)))
        }
        ValueType::Boolean => described(ObjectBuilder::new().schema_type(Type::Boolean)),
        ValueType::Enum { values } => described(
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())),
        ),
        ValueType::PriceTiers => ArrayBuilder::new()
            .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(PriceTier::name())))
            .min_items(Some(1))
            .description(Some(spec.explanation))
            .into(),
    }
}
