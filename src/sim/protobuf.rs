//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) of the
//! built-in types, turned into the JSON the same object would have had if
//! sent as JSON, so that everything after the body is read is shared.
//!
//! kubectl 1.32 sends `kubectl create configmap|secret|namespace` bodies
//! this way, and client-go's typed clients may too. The wire format
//! (k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go) is the
//! magic `k8s\0`, then a `runtime.Unknown` whose `typeMeta` names the kind
//! and whose `raw` is the object's own message of k8s.io/api.
//!
//! Messages are decoded by `prost-reflect` over descriptors that `protox`
//! compiles once, on first use, from the `.proto` files vendored under
//! `proto/`. The JSON follows Go's `encoding/json` on the k8s.io/api
//! structs, not proto3's JSON mapping: see [`Converter`].

use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MapKey, ReflectMessage, Value as Pb,
};
use serde_json::{Map, Number, Value};

use super::resources::ResourceDef;
use super::status::ApiError;

/// The media type of a protobuf body.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every protobuf body starts with (`protoEncodingPrefix`).
const MAGIC: &[u8; 4] = b"k8s\0";

/// The vendored `.proto` files, by the name they are imported as.
const PROTOS: &[(&str, &str)] = &[
    (
        CORE_V1,
        include_str!("proto/k8s.io/api/core/v1/generated.proto"),
    ),
    (
        "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
        include_str!("proto/k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"),
    ),
    (
        RUNTIME,
        include_str!("proto/k8s.io/apimachinery/pkg/runtime/generated.proto"),
    ),
    (
        "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
        include_str!("proto/k8s.io/apimachinery/pkg/runtime/schema/generated.proto"),
    ),
    (
        "k8s.io/apimachinery/pkg/api/resource/generated.proto",
        include_str!("proto/k8s.io/apimachinery/pkg/api/resource/generated.proto"),
    ),
    (
        "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
        include_str!("proto/k8s.io/apimachinery/pkg/util/intstr/generated.proto"),
    ),
];
const CORE_V1: &str = "k8s.io/api/core/v1/generated.proto";
const RUNTIME: &str = "k8s.io/apimachinery/pkg/runtime/generated.proto";

/// What Go's JSON does with fields their messages cannot tell: scalars
/// whose zero value it writes, embedded structs it inlines, structs it
/// leaves out when zero (made by `tests/apiserver/protogen/json_fields.go`).
const JSON_FIELDS: &str = include_str!("proto/json_fields.txt");

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";

/// Why a protobuf body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// Upstream's words for a body without the magic.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    Magic,
    /// The magic and nothing after it.
    #[error("empty body")]
    Empty,
    /// The `runtime.Unknown` envelope did not decode.
    #[error("the protobuf envelope (runtime.Unknown) could not be decoded: {0}")]
    Envelope(String),
    /// `typeMeta.apiVersion` is not the URL's.
    #[error("the API version in the data ({found}) does not match the expected API version ({expected})")]
    ApiVersion { found: String, expected: String },
    /// `typeMeta.kind` is not the URL's resource's.
    #[error("the kind in the data ({found}) does not match the expected kind ({expected})")]
    Kind { found: String, expected: String },
    /// `raw` is not a valid message of the kind.
    #[error("the {kind} in the protobuf body could not be decoded: {reason}")]
    Object { kind: String, reason: String },
    /// A field decoded but has no JSON form (a bad time, a raw field that
    /// is not JSON, ...); `path` is dotted from the object's root.
    #[error("the {kind} in the protobuf body has an invalid {path}: {reason}")]
    Field {
        kind: String,
        path: String,
        reason: String,
    },
    /// No descriptors for the resource's group and version: a server error,
    /// as the caller should have answered 415 (see [`accepts`]).
    #[error("no protobuf message describes {0}")]
    NoMessage(String),
    /// The vendored `.proto` files did not compile: a bug, never the
    /// client's fault.
    #[error("the protobuf descriptors could not be loaded: {0}")]
    Descriptors(String),
}

impl From<ProtobufError> for ApiError {
    fn from(e: ProtobufError) -> ApiError {
        match e {
            ProtobufError::NoMessage(_) | ProtobufError::Descriptors(_) => {
                ApiError::new(500, "InternalError", e.to_string())
            }
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

/// Whether a protobuf body of `res` can be read: the built-in types, whose
/// messages are in k8s.io/api. A custom resource has none (a real server
/// takes JSON and YAML for it, never protobuf).
pub(crate) fn accepts(res: &ResourceDef) -> bool {
    res.group.is_empty() && res.version == "v1"
}

/// The JSON object a protobuf body of `res` stands for, with `kind` and
/// `apiVersion` from its envelope (defaulted to the resource's when empty,
/// as `copyKindDefaults` does).
pub(crate) fn to_json(res: &ResourceDef, body: &[u8]) -> Result<Value, ProtobufError> {
    let data = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
    if data.is_empty() {
        return Err(ProtobufError::Empty);
    }
    let schema = Schema::get()?;
    let unknown = schema
        .pool
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ProtobufError::Descriptors(format!("{UNKNOWN} is missing")))?;
    let envelope = DynamicMessage::decode(unknown, data)
        .map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let type_meta = match envelope.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(m)) => Some(m.clone()),
        _ => None,
    };
    let text = |name: &str| {
        type_meta
            .as_ref()
            .and_then(|m| m.get_field_by_name(name))
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|s| !s.is_empty())
    };
    let expected_version = res.api_version();
    let api_version = text("apiVersion").unwrap_or_else(|| expected_version.clone());
    if api_version != expected_version {
        return Err(ProtobufError::ApiVersion {
            found: api_version,
            expected: expected_version,
        });
    }
    let kind = text("kind").unwrap_or_else(|| res.kind.to_string());
    if kind != res.kind {
        return Err(ProtobufError::Kind {
            found: kind,
            expected: res.kind.to_string(),
        });
    }
    if !accepts(res) {
        return Err(ProtobufError::NoMessage(format!("{api_version} {kind}")));
    }
    let name = format!("k8s.io.api.core.{}.{kind}", res.version);
    let desc = schema
        .pool
        .get_message_by_name(&name)
        .ok_or_else(|| ProtobufError::NoMessage(name.clone()))?;
    let raw = match envelope.get_field_by_name("raw").as_deref() {
        Some(Pb::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let object = DynamicMessage::decode(desc, raw).map_err(|e| ProtobufError::Object {
        kind: kind.clone(),
        reason: e.to_string(),
    })?;
    let converter = Converter {
        fields: &schema.fields,
    };
    let mut json = match converter.message(&object) {
        Ok(Value::Object(m)) => m,
        Ok(_) => Map::new(),
        Err(bad) => {
            // Innermost first; `spec.containers[0].name`.
            let mut path = String::new();
            for segment in bad.path.iter().rev() {
                if !path.is_empty() && !segment.starts_with('[') {
                    path.push('.');
                }
                path.push_str(segment);
            }
            return Err(ProtobufError::Field {
                kind,
                path,
                reason: bad.reason,
            });
        }
    };
    json.insert("apiVersion".into(), Value::String(api_version));
    json.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(json))
}

/// The compiled descriptors and the JSON field table, built once.
struct Schema {
    pool: DescriptorPool,
    fields: JsonFields,
}

/// `json_fields.txt`, by protobuf field full name.
#[derive(Default)]
struct JsonFields {
    keep_zero: HashSet<&'static str>,
    inline: HashSet<&'static str>,
    omit_zero: HashSet<&'static str>,
}

impl JsonFields {
    fn parse(table: &'static str) -> Result<JsonFields, String> {
        let mut fields = JsonFields::default();
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(' ') {
                Some(("keep-zero", f)) => fields.keep_zero.insert(f),
                Some(("inline", f)) => fields.inline.insert(f),
                Some(("omit-zero", f)) => fields.omit_zero.insert(f),
                _ => return Err(format!("json_fields.txt: bad line {line:?}")),
            };
        }
        Ok(fields)
    }
}

impl Schema {
    fn get() -> Result<&'static Schema, ProtobufError> {
        static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
        SCHEMA
            .get_or_init(Schema::compile)
            .as_ref()
            .map_err(|e| ProtobufError::Descriptors(e.clone()))
    }

    fn compile() -> Result<Schema, String> {
        let mut compiler = protox::Compiler::with_file_resolver(Vendored);
        compiler
            .open_files([CORE_V1, RUNTIME])
            .map_err(|e| e.to_string())?;
        Ok(Schema {
            pool: compiler.descriptor_pool(),
            fields: JsonFields::parse(JSON_FIELDS)?,
        })
    }
}

/// Resolves imports to the vendored files, never the file system.
struct Vendored;

impl protox::file::FileResolver for Vendored {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        let (_, source) = PROTOS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| protox::Error::file_not_found(name))?;
        protox::file::File::from_source(name, source)
    }
}

/// A field with no JSON form; `path` innermost first while unwinding.
struct Bad {
    path: Vec<String>,
    reason: String,
}

impl Bad {
    fn new(reason: impl Into<String>) -> Bad {
        Bad {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn within(mut self, segment: impl Into<String>) -> Bad {
        self.path.push(segment.into());
        self
    }
}

/// Decoded messages to JSON by Go's `encoding/json` rules for k8s.io/api:
///
/// - Go's protobuf code writes every non-pointer field, zero or not, so a
///   scalar's presence says little: a zero is left out, as `omitempty`
///   does, unless the field is a pointer or has no `omitempty`
///   (`keep-zero` in the table), where Go's JSON writes it too.
/// - An embedded struct (`inline` in the table) is a field of its own in
///   protobuf; its fields go in the outer object, whose own fields win.
/// - A message present is written (a pointer set, or a struct, which
///   `omitempty` never leaves out) unless it is zero and tagged `omitzero`
///   (`omit-zero`: creationTimestamp); empty lists and maps are left out.
/// - Field names are the proto's, which k8s.io/api makes the JSON names;
///   integers are numbers, `bytes` base64.
/// - The types with their own JSON: `Time` (RFC 3339 seconds, `null` when
///   zero), `MicroTime` (6 fractional digits), `Quantity` (its string),
///   `IntOrString` (a number or a string), `RawExtension` and `FieldsV1`
///   (the JSON they hold).
struct Converter<'a> {
    fields: &'a JsonFields,
}

impl Converter<'_> {
    fn message(&self, msg: &DynamicMessage) -> Result<Value, Bad> {
        match msg.descriptor().full_name() {
            TIME => return time(msg, false),
            MICRO_TIME => return time(msg, true),
            QUANTITY => return Ok(quantity(msg)),
            INT_OR_STRING => return int_or_string(msg),
            RAW_EXTENSION => return embedded_json(msg, "raw"),
            FIELDS_V1 => return embedded_json(msg, "Raw"),
            _ => {}
        }
        let mut out = Map::new();
        for (field, value) in msg.fields() {
            let v = self
                .field(&field, value)
                .map_err(|b| b.within(field.name()))?;
            match v {
                Some(Value::Object(inner)) if self.fields.inline.contains(field.full_name()) => {
                    for (k, v) in inner {
                        out.entry(k).or_insert(v);
                    }
                }
                // A zero Time is null; another zero struct, all of whose
                // fields are left out, is {}.
                Some(v)
                    if is_empty_struct(&v) && self.fields.omit_zero.contains(field.full_name()) => {
                }
                Some(v) => {
                    out.insert(field.name().to_string(), v);
                }
                None => {}
            }
        }
        Ok(Value::Object(out))
    }

    fn field(&self, field: &FieldDescriptor, value: &Pb) -> Result<Option<Value>, Bad> {
        match value {
            Pb::List(items) if items.is_empty() => Ok(None),
            Pb::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.value(item).map_err(|b| b.within(format!("[{i}]")))?);
                }
                Ok(Some(Value::Array(out)))
            }
            Pb::Map(entries) if entries.is_empty() => Ok(None),
            Pb::Map(entries) => {
                let mut out = Map::new();
                for (key, item) in entries {
                    let key = map_key(key);
                    let v = self.value(item).map_err(|b| b.within(format!("[{key}]")))?;
                    out.insert(key, v);
                }
                Ok(Some(Value::Object(out)))
            }
            Pb::Message(_) => self.value(value).map(Some),
            scalar if is_zero(scalar) && !self.fields.keep_zero.contains(field.full_name()) => {
                Ok(None)
            }
            scalar => self.value(scalar).map(Some),
        }
    }

    fn value(&self, value: &Pb) -> Result<Value, Bad> {
        Ok(match value {
            Pb::Bool(b) => Value::Bool(*b),
            Pb::I32(n) | Pb::EnumNumber(n) => Value::from(*n),
            Pb::I64(n) => Value::from(*n),
            Pb::U32(n) => Value::from(*n),
            Pb::U64(n) => Value::from(*n),
            Pb::F32(f) => float(f64::from(*f))?,
            Pb::F64(f) => float(*f)?,
            Pb::String(s) => Value::String(s.clone()),
            Pb::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Pb::Message(m) => self.message(m)?,
            // k8s.io/api has no lists of lists or maps in lists.
            Pb::List(_) | Pb::Map(_) => return Err(Bad::new("a nested list or map")),
        })
    }
}

fn is_empty_struct(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(Map::is_empty)
}

fn is_zero(value: &Pb) -> bool {
    match value {
        Pb::Bool(b) => !b,
        Pb::I32(n) | Pb::EnumNumber(n) => *n == 0,
        Pb::I64(n) => *n == 0,
        Pb::U32(n) => *n == 0,
        Pb::U64(n) => *n == 0,
        Pb::F32(f) => *f == 0.0,
        Pb::F64(f) => *f == 0.0,
        Pb::String(s) => s.is_empty(),
        Pb::Bytes(b) => b.is_empty(),
        Pb::Message(_) | Pb::List(_) | Pb::Map(_) => false,
    }
}

fn float(f: f64) -> Result<Value, Bad> {
    // Go's encoding/json refuses NaN and infinities too.
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Bad::new(format!("{f} is not a JSON number")))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

fn int_field(msg: &DynamicMessage, name: &str) -> i64 {
    match msg.get_field_by_name(name).as_deref() {
        Some(Pb::I64(n)) => *n,
        Some(Pb::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

/// `metav1.Time` / `MicroTime`: an empty message is Go's zero time, whose
/// JSON is `null` (time_proto.go's Unmarshal of no data). Time keeps whole
/// seconds only (its Unmarshal drops `nanos`, as its JSON has none);
/// MicroTime truncates to microseconds and writes 6 digits.
fn time(msg: &DynamicMessage, micro: bool) -> Result<Value, Bad> {
    if msg.fields().next().is_none() {
        return Ok(Value::Null);
    }
    let seconds = int_field(msg, "seconds");
    let nanos = if micro {
        int_field(msg, "nanos") / 1000 * 1000
    } else {
        0
    };
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let ts = jiff::Timestamp::from_nanosecond(total)
        .map_err(|e| Bad::new(format!("time {seconds}s is out of range: {e}")))?;
    let t = jiff::tz::Offset::UTC.to_datetime(ts);
    // RFC 3339 has four-digit years; Go's JSON reader refuses others.
    if !(0..=9999).contains(&t.year()) {
        return Err(Bad::new(format!(
            "time {seconds}s is outside the years 0 to 9999"
        )));
    }
    let mut s = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        s.push_str(&format!(".{:06}", t.subsec_nanosecond() / 1000));
    }
    s.push('Z');
    Ok(Value::String(s))
}

/// `resource.Quantity`: its string (a zero Quantity, with none, is "0").
/// The sender's own Quantity wrote it in canonical form.
fn quantity(msg: &DynamicMessage) -> Value {
    match msg.get_field_by_name("string").as_deref() {
        Some(Pb::String(s)) if !s.is_empty() => Value::String(s.clone()),
        _ => Value::String("0".into()),
    }
}

/// `intstr.IntOrString`: `intVal` for type 0, `strVal` for type 1.
fn int_or_string(msg: &DynamicMessage) -> Result<Value, Bad> {
    match int_field(msg, "type") {
        0 => Ok(Value::from(int_field(msg, "intVal"))),
        1 => Ok(match msg.get_field_by_name("strVal").as_deref() {
            Some(Pb::String(s)) => Value::String(s.clone()),
            _ => Value::String(String::new()),
        }),
        t => Err(Bad::new(format!(
            "IntOrString type {t} is neither 0 (int) nor 1 (string)"
        ))),
    }
}

/// `RawExtension` and `FieldsV1` hold JSON, written as is; none is `null`.
fn embedded_json(msg: &DynamicMessage, field: &str) -> Result<Value, Bad> {
    match msg.get_field_by_name(field).as_deref() {
        Some(Pb::Bytes(b)) if !b.is_empty() => serde_json::from_slice(b)
            .map_err(|e| Bad::new(format!("the embedded object is not JSON: {e}"))),
        _ => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use serde_json::json;

    use super::*;
    use crate::sim::resources::RESOURCES;

    fn resource(kind: &str) -> &'static ResourceDef {
        RESOURCES.iter().find(|r| r.kind == kind).unwrap()
    }

    fn pool() -> &'static DescriptorPool {
        &Schema::get().unwrap().pool
    }

    /// A message of type `name` with `fields` set.
    fn message(name: &str, fields: Vec<(&str, Pb)>) -> DynamicMessage {
        let desc = pool().get_message_by_name(name).unwrap();
        let mut m = DynamicMessage::new(desc);
        for (f, v) in fields {
            m.set_field_by_name(f, v);
        }
        m
    }

    /// A body as client-go frames it: magic, then a `runtime.Unknown`.
    fn body(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
        let type_meta = message(
            "k8s.io.apimachinery.pkg.runtime.TypeMeta",
            vec![
                ("apiVersion", Pb::String(api_version.into())),
                ("kind", Pb::String(kind.into())),
            ],
        );
        let unknown = message(
            UNKNOWN,
            vec![
                ("typeMeta", Pb::Message(type_meta)),
                ("raw", Pb::Bytes(object.encode_to_vec().into())),
            ],
        );
        [&MAGIC[..], &unknown.encode_to_vec()].concat()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Objects of every served built-in kind, encoded by k8s.io/api's own
    /// Go code, decode to exactly the JSON encoding/json writes for them
    /// (tests/apiserver/protogen/vectors.go): pointers set to zero kept, omitempty zeros
    /// left out, embedded structs inlined, Quantity, IntOrString, Time,
    /// FieldsV1, bytes and int64 in their JSON forms.
    #[test]
    fn go_encoded_objects_decode_to_the_json_go_writes() {
        let vectors = include_str!("proto/testdata/vectors.txt");
        let mut kinds = Vec::new();
        for line in vectors.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = line.split('\t');
            let (kind, body, want) = (
                cols.next().unwrap(),
                cols.next().unwrap(),
                cols.next().unwrap(),
            );
            let want: Value = serde_json::from_str(want).unwrap();
            let got = to_json(resource(kind), &hex(body)).unwrap();
            assert_eq!(got, want, "{kind}");
            kinds.push(kind);
        }
        let builtin: Vec<_> = RESOURCES.iter().filter(|r| accepts(r)).collect();
        assert_eq!(kinds.len(), builtin.len());
        assert!(builtin.iter().all(|r| kinds.contains(&r.kind)));
    }

    /// The body `kubectl create configmap x --from-literal=a=b` sent
    /// (kubectl 1.32, -v=9), which writes every string of ObjectMeta and an
    /// empty creationTimestamp: the JSON is what `--dry-run=client -o json`
    /// prints, but for `"creationTimestamp": null`, which v0.37.2's
    /// `omitzero` leaves out (the same zero time to a reader).
    #[test]
    fn kubectl_create_configmap_body_is_its_json() {
        let body = hex(concat!(
            "6b3873000a0f0a0276311209436f6e66",
            "69674d6170121b0a110a017812001a00",
            "22002a0032003800420012060a016112",
            "01621a002200"
        ));
        // The capture ends with the ConfigMap's data and the envelope's
        // empty contentEncoding and contentType.
        let got = to_json(resource("ConfigMap"), &body).unwrap();
        assert_eq!(
            got,
            json!({
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {"name": "x"},
                "data": {"a": "b"}
            })
        );
    }

    #[test]
    fn times_and_int_or_strings_have_their_json_forms() {
        let converter = Converter {
            fields: &Schema::get().unwrap().fields,
        };
        let time = |name: &str, fields| converter.message(&message(name, fields));
        let secs = Pb::I64(1_704_164_645);
        let nanos = Pb::I32(123_456_789);
        assert_eq!(
            time(
                TIME,
                vec![("seconds", secs.clone()), ("nanos", nanos.clone())]
            )
            .ok(),
            Some(json!("2024-01-02T03:04:05Z"))
        );
        assert_eq!(
            time(
                MICRO_TIME,
                vec![("seconds", secs.clone()), ("nanos", nanos)]
            )
            .ok(),
            Some(json!("2024-01-02T03:04:05.123456Z"))
        );
        assert_eq!(
            time(MICRO_TIME, vec![("seconds", secs)]).ok(),
            Some(json!("2024-01-02T03:04:05.000000Z"))
        );
        assert_eq!(
            time(TIME, vec![("seconds", Pb::I64(0))]).ok(),
            Some(json!("1970-01-01T00:00:00Z")),
            "a zero written is the epoch"
        );
        assert_eq!(time(TIME, vec![]).ok(), Some(Value::Null));
        let far = time(TIME, vec![("seconds", Pb::I64(i64::MAX))]);
        assert!(far.is_err());
        let ios = |fields| converter.message(&message(INT_OR_STRING, fields));
        assert_eq!(
            ios(vec![("type", Pb::I64(0)), ("intVal", Pb::I32(0))]).ok(),
            Some(json!(0))
        );
        assert_eq!(
            ios(vec![
                ("type", Pb::I64(1)),
                ("strVal", Pb::String("http".into()))
            ])
            .ok(),
            Some(json!("http"))
        );
        assert!(ios(vec![("type", Pb::I64(2))]).is_err());
    }

    /// A field with no JSON form is a 400 naming its path.
    #[test]
    fn a_field_without_a_json_form_is_named() {
        let ios = message(INT_OR_STRING, vec![("type", Pb::I64(7))]);
        let socket = message(
            "k8s.io.api.core.v1.TCPSocketAction",
            vec![("port", Pb::Message(ios))],
        );
        let handler = message(
            "k8s.io.api.core.v1.ProbeHandler",
            vec![("tcpSocket", Pb::Message(socket))],
        );
        let probe = message(
            "k8s.io.api.core.v1.Probe",
            vec![("handler", Pb::Message(handler))],
        );
        let container = message(
            "k8s.io.api.core.v1.Container",
            vec![
                ("name", Pb::String("c".into())),
                ("livenessProbe", Pb::Message(probe)),
            ],
        );
        let spec = message(
            "k8s.io.api.core.v1.PodSpec",
            vec![("containers", Pb::List(vec![Pb::Message(container)]))],
        );
        let pod = message("k8s.io.api.core.v1.Pod", vec![("spec", Pb::Message(spec))]);
        let err = to_json(resource("Pod"), &body("v1", "Pod", &pod)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Pod in the protobuf body has an invalid spec.containers[0].livenessProbe.handler.tcpSocket.port: IntOrString type 7 is neither 0 (int) nor 1 (string)"
        );
        assert_eq!(ApiError::from(err).code, 400);
    }

    #[test]
    fn an_empty_type_meta_takes_the_resources() {
        let ns = message(
            "k8s.io.api.core.v1.Namespace",
            vec![(
                "metadata",
                Pb::Message(message(
                    "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                    vec![("name", Pb::String("demo".into()))],
                )),
            )],
        );
        let got = to_json(resource("Namespace"), &body("", "", &ns)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
        );
    }

    #[test]
    fn bodies_that_are_not_kubernetes_protobuf_are_bad_requests() {
        let cm = message("k8s.io.api.core.v1.ConfigMap", vec![]);
        let configmap = resource("ConfigMap");
        let refused = |body: &[u8]| {
            let e = to_json(configmap, body).unwrap_err();
            let api = ApiError::from(e.clone());
            assert_eq!((api.code, api.reason), (400, "BadRequest"), "{e}");
            e
        };
        assert_eq!(refused(b"{\"kind\":\"ConfigMap\"}"), ProtobufError::Magic);
        assert!(refused(b"k8")
            .to_string()
            .contains("expected prefix [107 56 115 0]"));
        assert_eq!(refused(b"k8s\0"), ProtobufError::Empty);
        assert!(matches!(
            refused(b"k8s\0\x0a\x0f\x0a\x02v1"),
            ProtobufError::Envelope(_)
        ));
        assert_eq!(
            refused(&body("v1", "Secret", &cm)).to_string(),
            "the kind in the data (Secret) does not match the expected kind (ConfigMap)"
        );
        assert_eq!(
            refused(&body("v2", "ConfigMap", &cm)).to_string(),
            "the API version in the data (v2) does not match the expected API version (v1)"
        );
        // `raw` that is not a ConfigMap message: field 1 (metadata) with a
        // length past the end.
        let unknown = message(
            UNKNOWN,
            vec![("raw", Pb::Bytes(bytes::Bytes::from_static(b"\x0a\x7f")))],
        );
        let body = [&MAGIC[..], &unknown.encode_to_vec()].concat();
        assert!(matches!(refused(&body), ProtobufError::Object { .. }));
    }

    #[test]
    fn only_built_in_types_are_read() {
        let custom: Vec<_> = RESOURCES.iter().filter(|r| !accepts(r)).collect();
        assert!(!custom.is_empty() && custom.iter().all(|r| r.is_custom()));
    }

    /// Every name in json_fields.txt is a field of the vendored messages,
    /// scalar for `keep-zero`, a message for `inline`: the table and the
    /// .proto files are of the same version.
    #[test]
    fn json_fields_name_fields_of_the_vendored_messages() {
        let schema = Schema::get().unwrap();
        let field = |full: &str| {
            let (msg, name) = full.rsplit_once('.').unwrap();
            let desc = schema
                .pool
                .get_message_by_name(msg)
                .unwrap_or_else(|| panic!("{msg}"));
            desc.get_field_by_name(name)
                .unwrap_or_else(|| panic!("{full}"))
        };
        assert!(schema.fields.keep_zero.len() > 300);
        for f in &schema.fields.keep_zero {
            let kind = field(f).kind();
            assert!(kind.as_message().is_none(), "{f} is a message");
        }
        assert!(schema.fields.inline.len() >= 10);
        assert!(!schema.fields.omit_zero.is_empty());
        for f in schema.fields.inline.iter().chain(&schema.fields.omit_zero) {
            assert!(field(f).kind().as_message().is_some(), "{f}");
        }
    }
}
