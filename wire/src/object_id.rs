//! BSON ObjectIds on the wire, so that code on either side holds a
//! [`bson::oid::ObjectId`], never its bytes: in protobuf, the message
//! `bson.ObjectId` of `protos/bson/bson/object_id.proto` (its 12 bytes); in
//! JSON, the 24-hex-digit string, or MongoDB Extended JSON
//! `{"$oid": "<24 hex digits>"}` on the way in.
//!
//! Why conversions and not prost's `extern_path` to a type of our own: such
//! a type would have to refuse a wrong length while the message is decoded,
//! and tonic answers every decoding error with INTERNAL. Decoded as bytes
//! and converted here, a wrong length is an [`ObjectIdError`]:
//! [`ErrorKind::InvalidInput`], INVALID_ARGUMENT over gRPC and 400 over
//! HTTP, with a message that says what an ObjectId is. Nothing here panics
//! on what a peer sent.
//!
//! In a handler: `let id = object_id::required(request.get_ref().id.as_ref())?`
//! (a missing field is an error too), or [`optional`] when the field may be
//! absent; and `Some(id.into())` to send one.

use std::fmt;

pub use ::bson::oid::ObjectId;
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

use crate::{errors::ErrorKind, proto};

/// An ObjectId's length in bytes.
pub const BYTES: usize = 12;

/// How JSON must write an ObjectId, for error messages.
const JSON_FORMS: &str = r#"24 hexadecimal digits ("65f1a2b3c4d5e6f708192a3b") or Extended JSON ({"$oid": "65f1a2b3c4d5e6f708192a3b"})"#;

/// Longest piece of a refused value that an error message repeats.
const SHOWN: usize = 40;

/// An ObjectId that cannot be taken: INVALID_ARGUMENT, or 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectIdError {
    #[error("an ObjectId is {BYTES} bytes, got {0}")]
    WrongLength(usize),
    #[error("an ObjectId is required")]
    Missing,
    #[error("an ObjectId in JSON is {JSON_FORMS}, got {0}")]
    Json(String),
}

impl ObjectIdError {
    /// Its row in the error table: the caller sent something we cannot take.
    pub const fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

#[cfg(feature = "grpc")]
impl From<ObjectIdError> for tonic::Status {
    fn from(error: ObjectIdError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

// === protobuf ===

impl From<ObjectId> for proto::bson::ObjectId {
    fn from(id: ObjectId) -> Self {
        Self { value: id.bytes().to_vec() }
    }
}

impl TryFrom<&proto::bson::ObjectId> for ObjectId {
    type Error = ObjectIdError;

    fn try_from(message: &proto::bson::ObjectId) -> Result<Self, ObjectIdError> {
        let bytes: [u8; BYTES] = message
            .value
            .as_slice()
            .try_into()
            .map_err(|_| ObjectIdError::WrongLength(message.value.len()))?;
        Ok(ObjectId::from_bytes(bytes))
    }
}

/// A field that must be there: proto3 message fields can always be absent.
pub fn required(field: Option<&proto::bson::ObjectId>) -> Result<ObjectId, ObjectIdError> {
    field.ok_or(ObjectIdError::Missing).and_then(ObjectId::try_from)
}

/// A field that may be absent (as from a peer that predates it).
pub fn optional(field: Option<&proto::bson::ObjectId>) -> Result<Option<ObjectId>, ObjectIdError> {
    field.map(ObjectId::try_from).transpose()
}

impl proto::ProcessNameResponse {
    /// The ObjectId service1 assigned to the name; `None` from a service1
    /// that does not send one (the original).
    pub fn object_id(&self) -> Result<Option<ObjectId>, ObjectIdError> {
        optional(self.id.as_ref())
    }
}

// === JSON ===

/// An ObjectId in a JSON body or answer (serde): written as its 24
/// lower-case hex digits; read from those (either case) or from
/// `{"$oid": "..."}`, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonObjectId(pub ObjectId);

impl Serialize for JsonObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for JsonObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        from_json_value(&value).map(Self).map_err(D::Error::custom)
    }
}

/// The ObjectId a JSON value writes, in either accepted form.
pub fn from_json_value(value: &serde_json::Value) -> Result<ObjectId, ObjectIdError> {
    use serde_json::Value;
    let hex = match value {
        Value::String(hex) => hex,
        Value::Object(map) if map.len() == 1 => match map.get("$oid") {
            Some(Value::String(hex)) => hex,
            _ => return Err(refused(value)),
        },
        _ => return Err(refused(value)),
    };
    parse_hex(hex).ok_or_else(|| refused(value))
}

/// The ObjectId a JSON text writes (a whole document: `"..."` or
/// `{"$oid": "..."}`).
pub fn from_json(text: &str) -> Result<ObjectId, ObjectIdError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => from_json_value(&value),
        Err(_) => Err(ObjectIdError::Json(format!("text that is not JSON: {}", shorten(text)))),
    }
}

/// `id` as JSON: its 24 hex digits, quoted.
pub fn to_json(id: &ObjectId) -> String {
    format!("\"{}\"", id.to_hex())
}

/// Exactly 24 hex digits; bson's own parser is used only then, so what it
/// accepts beyond that does not widen the contract.
fn parse_hex(text: &str) -> Option<ObjectId> {
    if text.len() != 2 * BYTES || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ObjectId::parse_str(text).ok()
}

fn refused(value: &serde_json::Value) -> ObjectIdError {
    ObjectIdError::Json(shorten(&value.to_string()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl fmt::Display for JsonObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "65f1a2b3c4d5e6f708192a3b";

    fn message(bytes: &[u8]) -> proto::bson::ObjectId {
        proto::bson::ObjectId { value: bytes.to_vec() }
    }

    #[test]
    fn a_message_of_12_bytes_is_that_object_id_and_back() {
        let id = ObjectId::parse_str(HEX).unwrap();
        let sent = proto::bson::ObjectId::from(id);
        assert_eq!(sent.value, id.bytes());
        assert_eq!(ObjectId::try_from(&sent), Ok(id));
    }

    #[test]
    fn any_other_length_is_invalid_input_saying_so() {
        for len in [0, 1, 11, 13, 24] {
            let error = ObjectId::try_from(&message(&vec![7; len])).unwrap_err();
            assert_eq!(error, ObjectIdError::WrongLength(len));
            assert_eq!(error.to_string(), format!("an ObjectId is 12 bytes, got {len}"));
            assert_eq!(error.kind().grpc_code(), crate::GrpcCode::InvalidArgument);
            assert_eq!(error.kind().http_status(), http::StatusCode::BAD_REQUEST);
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn in_a_grpc_handler_a_wrong_length_is_invalid_argument_saying_why() {
        let status = tonic::Status::from(ObjectId::try_from(&message(&[1; 5])).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "an ObjectId is 12 bytes, got 5");
    }

    #[test]
    fn a_missing_field_is_an_error_only_where_it_is_required() {
        assert_eq!(required(None), Err(ObjectIdError::Missing));
        assert_eq!(required(Some(&message(&[9; 12]))), Ok(ObjectId::from_bytes([9; 12])));
        assert_eq!(optional(None), Ok(None));
        let response = proto::ProcessNameResponse { name: "A".into(), id: Some(message(&[1; 3])) };
        assert_eq!(response.object_id(), Err(ObjectIdError::WrongLength(3)));
    }

    #[test]
    fn json_takes_the_hex_string_and_extended_json() {
        let id = ObjectId::parse_str(HEX).unwrap();
        assert_eq!(from_json(&format!("\"{HEX}\"")), Ok(id));
        assert_eq!(from_json(&format!("\"{}\"", HEX.to_uppercase())), Ok(id));
        assert_eq!(from_json(&format!(r#"{{"$oid": "{HEX}"}}"#)), Ok(id));
        assert_eq!(to_json(&id), format!("\"{HEX}\""));
        assert_eq!(serde_json::to_string(&JsonObjectId(id)).unwrap(), format!("\"{HEX}\""));
    }

    #[test]
    fn json_refuses_everything_else_with_a_message_that_shows_the_forms() {
        for text in [
            "\"65f1a2b3c4d5e6f708192a3\"",
            "\"65f1a2b3c4d5e6f708192a3bb\"",
            "\"zzf1a2b3c4d5e6f708192a3b\"",
            "\"+5f1a2b3c4d5e6f708192a3b\"",
            "12",
            "null",
            "[\"65f1a2b3c4d5e6f708192a3b\"]",
            r#"{"$oid": 1}"#,
            r#"{"oid": "65f1a2b3c4d5e6f708192a3b"}"#,
            r#"{"$oid": "65f1a2b3c4d5e6f708192a3b", "x": 1}"#,
            r#"{"$binary": "ZfGis8TV5vcIGSo7"}"#,
            "65f1a2b3c4d5e6f708192a3b",
        ] {
            let error = from_json(text).unwrap_err();
            let line = error.to_string();
            assert!(line.starts_with("an ObjectId in JSON is 24 hexadecimal digits"), "{text}: {line}");
            assert!(line.contains(r#"{"$oid": "#), "{line}");
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
            let parsed: Result<JsonObjectId, _> = serde_json::from_str(text);
            assert!(parsed.is_err(), "{text}");
        }
    }

    #[test]
    fn a_long_refused_value_is_not_repeated_whole() {
        let line = from_json(&format!("\"{}\"", "a".repeat(10_000))).unwrap_err().to_string();
        assert!(line.len() < 300, "{line}");
    }
}
