//! Taking one field out of a JSON secret (Vault KV data, an AWS SecretString).
//! Errors describe the shape, never the content.

use secrecy::SecretString;
use serde_json::{Map, Value};

/// Why a field could not be taken. The caller adds the reference.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FieldError {
    Missing,
    /// An object, array or null: not something to use as a password.
    NotScalar,
    Empty,
}

/// The field's value as text: strings as they are, numbers and booleans as
/// their JSON text.
pub(crate) fn field_value(
    data: &Map<String, Value>,
    field: &str,
) -> Result<SecretString, FieldError> {
    let text = match data.get(field) {
        None => return Err(FieldError::Missing),
        Some(Value::String(text)) => text.clone(),
        Some(value @ (Value::Number(_) | Value::Bool(_))) => value.to_string(),
        Some(Value::Null | Value::Array(_) | Value::Object(_)) => {
            return Err(FieldError::NotScalar);
        }
    };
    if text.is_empty() {
        return Err(FieldError::Empty);
    }
    Ok(SecretString::from(text))
}

/// Parses text that must be a JSON object (an AWS SecretString with a field).
/// The parser's message is dropped: it can quote the input.
pub(crate) fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The key/value map in a Vault read answer: KV v2 keeps it in `.data.data`
/// (next to `.data.metadata`), KV v1 directly in `.data`.
pub(crate) fn vault_kv_data(body: &Value) -> Result<&Map<String, Value>, &'static str> {
    let Some(Value::Object(data)) = body.get("data") else {
        return Err("vault's answer has no data object");
    };
    match data.get("data") {
        Some(Value::Object(inner)) => Ok(inner),
        Some(Value::Null) if data.contains_key("metadata") => {
            Err("the secret's current version is deleted or destroyed")
        }
        _ => Ok(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn takes_strings_numbers_and_booleans() {
        let data = object(
            json!({"password": "pw", "port": 5432, "flag": true, "none": null,
            "list": [1], "nested": {"a": 1}, "blank": ""}),
        );
        assert_eq!(
            field_value(&data, "password").unwrap().expose_secret(),
            "pw"
        );
        assert_eq!(field_value(&data, "port").unwrap().expose_secret(), "5432");
        assert_eq!(field_value(&data, "flag").unwrap().expose_secret(), "true");
        assert_eq!(
            field_value(&data, "missing").unwrap_err(),
            FieldError::Missing
        );
        for field in ["none", "list", "nested"] {
            assert_eq!(
                field_value(&data, field).unwrap_err(),
                FieldError::NotScalar
            );
        }
        assert_eq!(field_value(&data, "blank").unwrap_err(), FieldError::Empty);
    }

    #[test]
    fn parses_only_objects() {
        assert!(parse_object(r#"{"a":"b"}"#).is_some());
        assert!(parse_object("hunter2").is_none());
        assert!(parse_object(r#"["a"]"#).is_none());
        assert!(parse_object(r#""a""#).is_none());
    }

    #[test]
    fn reads_kv_v2_and_kv_v1_shapes() {
        let v2 = json!({"data": {"data": {"password": "two"},
            "metadata": {"version": 3, "destroyed": false, "deletion_time": ""}}});
        assert_eq!(vault_kv_data(&v2).unwrap()["password"], "two");

        let v1 = json!({"data": {"password": "one"}, "lease_duration": 2764800});
        assert_eq!(vault_kv_data(&v1).unwrap()["password"], "one");

        // A KV v1 secret may itself have a non-object field called "data".
        let v1_data_field = json!({"data": {"data": "x", "password": "one"}});
        assert_eq!(vault_kv_data(&v1_data_field).unwrap()["password"], "one");

        let deleted =
            json!({"data": {"data": null, "metadata": {"deletion_time": "2018-03-22T02:24:06Z"}}});
        assert!(vault_kv_data(&deleted).unwrap_err().contains("deleted"));

        assert!(vault_kv_data(&json!({"errors": []})).is_err());
        assert!(vault_kv_data(&json!({"data": "text"})).is_err());
    }
}
