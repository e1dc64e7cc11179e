//! Schema-driven conversion of an encoded k8s.io/api message into Go-compatible JSON.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::CodecError;
use crate::schema::{self, Card, Field, Message, Ty};
use crate::wire::{Reader, WireValue};

/// Maximum nesting of messages (Kubernetes objects nest about 15 deep).
pub(crate) const MAX_DEPTH: usize = 100;

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const QUANTITY_VALUE: &str = "k8s.io.apimachinery.pkg.api.resource.QuantityValue";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";

/// Decodes `data` as the message `msg` into a JSON object (without `apiVersion`/`kind`).
/// `depth` is the nesting level of this object (non-zero for objects embedded in a
/// `RawExtension`), so that nesting is bounded across embedded objects too.
pub(crate) fn decode_object(
    msg: &'static Message,
    data: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, CodecError> {
    let mut path = Path {
        fields: Vec::new(),
        base: depth,
    };
    match decode_message(msg, data, &mut path)? {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(CodecError::InvalidField {
            field: String::new(),
            reason: format!("{} is not encoded as a JSON object", msg.name),
        }),
    }
}

/// Where the decoder is: JSON field names for error messages
/// (`spec.template.spec.containers`) and the nesting depth.
pub(crate) struct Path {
    fields: Vec<&'static str>,
    /// Depth of the enclosing objects (for objects embedded in a `RawExtension`).
    base: usize,
}

impl Path {
    fn depth(&self) -> usize {
        self.base + self.fields.len()
    }
    fn push(&mut self, field: &'static str) {
        self.fields.push(field);
    }
    fn pop(&mut self) {
        self.fields.pop();
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> CodecError {
    CodecError::InvalidField {
        field: path.fields.join("."),
        reason: reason.into(),
    }
}

/// Decodes one message. `None` means "write nothing" (a zero `Time`, an empty `RawExtension`).
fn decode_message(
    msg: &'static Message,
    data: &[u8],
    path: &mut Path,
) -> Result<Option<Value>, CodecError> {
    if path.depth() > MAX_DEPTH {
        return Err(invalid(path, "message nesting is too deep"));
    }
    if let Some(special) = decode_special(msg, data, path)? {
        return Ok(special);
    }
    // Bucket the wire values by field (declaration order), then convert in that order, which
    // is the Go struct order and so the order of Go's JSON output.
    let mut buckets: Vec<Vec<WireValue<'_>>> = vec![Vec::new(); msg.fields.len()];
    let mut reader = Reader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        if let Some(i) = msg.fields.iter().position(|f| f.number == number) {
            buckets[i].push(value);
        }
        // Unknown fields are skipped, as Go's generated unmarshalers do.
    }
    let mut out = Map::new();
    for (field, values) in msg.fields.iter().zip(&buckets) {
        if values.is_empty() {
            continue;
        }
        path.push(field.json);
        let result = decode_field(field, values, path, &mut out);
        path.pop();
        result?;
    }
    Ok(Some(Value::Object(out)))
}

fn decode_field(
    field: &'static Field,
    values: &[WireValue<'_>],
    path: &mut Path,
    out: &mut Map<String, Value>,
) -> Result<(), CodecError> {
    match (field.card, field.ty) {
        (Card::Single, Ty::Msg(index)) => {
            // Several occurrences of an embedded message are merged, which for the wire format
            // is the same as decoding their concatenation.
            let data = concat_bytes(values, path)?;
            let Some(value) = decode_message(schema::message_at(index), &data, path)? else {
                return Ok(());
            };
            if field.inline() {
                if let Value::Object(inner) = value {
                    out.extend(inner);
                }
            } else {
                out.insert(field.json.to_owned(), value);
            }
        }
        (Card::Single, ty) => {
            let last = values.last().expect("bucket is not empty");
            let value = decode_scalar(ty, *last, path)?;
            if field.keep_zero() || !is_zero(&value) {
                out.insert(field.json.to_owned(), value);
            }
        }
        (Card::Repeated, Ty::Msg(index)) => {
            let msg = schema::message_at(index);
            let mut items = Vec::with_capacity(values.len());
            for value in values {
                let WireValue::Bytes(data) = value else {
                    return Err(wrong_wire_type(path, value));
                };
                items.push(decode_message(msg, data, path)?.unwrap_or(Value::Null));
            }
            out.insert(field.json.to_owned(), Value::Array(items));
        }
        (Card::Repeated, ty) => {
            let mut items = Vec::with_capacity(values.len());
            for value in values {
                match (ty, value) {
                    (Ty::Str | Ty::Bytes, _) => items.push(decode_scalar(ty, *value, path)?),
                    // Packed encoding of numeric and bool elements.
                    (_, WireValue::Bytes(data)) => decode_packed(ty, data, path, &mut items)?,
                    _ => items.push(decode_scalar(ty, *value, path)?),
                }
            }
            out.insert(field.json.to_owned(), Value::Array(items));
        }
        (Card::Map, ty) => {
            let mut map = Map::new();
            for value in values {
                let WireValue::Bytes(entry) = value else {
                    return Err(wrong_wire_type(path, value));
                };
                let (key, value) = decode_map_entry(ty, entry, path)?;
                map.insert(key, value);
            }
            out.insert(field.json.to_owned(), Value::Object(map));
        }
    }
    Ok(())
}

/// The bytes of an embedded message; borrowed in the usual case of a single occurrence.
fn concat_bytes<'a>(values: &[WireValue<'a>], path: &Path) -> Result<Cow<'a, [u8]>, CodecError> {
    if let [WireValue::Bytes(bytes)] = values {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut data = Vec::new();
    for value in values {
        let WireValue::Bytes(bytes) = value else {
            return Err(wrong_wire_type(path, value));
        };
        data.extend_from_slice(bytes);
    }
    Ok(Cow::Owned(data))
}

fn wrong_wire_type(path: &Path, value: &WireValue<'_>) -> CodecError {
    invalid(path, format!("wrong wire type {}", value.wire_type()))
}

fn decode_map_entry(ty: Ty, entry: &[u8], path: &mut Path) -> Result<(String, Value), CodecError> {
    let mut key = String::new();
    let mut raw_value: Vec<WireValue<'_>> = Vec::new();
    let mut reader = Reader::new(entry);
    while let Some((number, value)) = reader.next_field()? {
        match number {
            1 => {
                let WireValue::Bytes(bytes) = value else {
                    return Err(wrong_wire_type(path, &value));
                };
                key = String::from_utf8_lossy(bytes).into_owned();
            }
            2 => raw_value.push(value),
            _ => {}
        }
    }
    let value = match ty {
        Ty::Msg(index) => {
            let data = concat_bytes(&raw_value, path)?;
            decode_message(schema::message_at(index), &data, path)?.unwrap_or(Value::Null)
        }
        scalar => match raw_value.last() {
            Some(value) => decode_scalar(scalar, *value, path)?,
            None => zero_of(scalar),
        },
    };
    Ok((key, value))
}

fn zero_of(ty: Ty) -> Value {
    match ty {
        Ty::Bool => Value::Bool(false),
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        _ => Value::from(0),
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn decode_scalar(ty: Ty, value: WireValue<'_>, path: &Path) -> Result<Value, CodecError> {
    // Truncating casts below follow protobuf semantics (an int32 is the low 32 bits of the varint).
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let json = match (ty, value) {
        (Ty::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Ty::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Ty::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        // Go does not validate UTF-8 in proto2 strings; its JSON encoder replaces invalid
        // sequences with U+FFFD, which is what a lossy conversion does.
        (Ty::Str, WireValue::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (_, value) => return Err(wrong_wire_type(path, &value)),
    };
    Ok(json)
}

fn decode_packed(
    ty: Ty,
    data: &[u8],
    path: &Path,
    items: &mut Vec<Value>,
) -> Result<(), CodecError> {
    let mut reader = Reader::new(data);
    while !reader.is_empty() {
        let value = WireValue::Varint(reader.varint()?);
        items.push(decode_scalar(ty, value, path)?);
    }
    Ok(())
}

/// Reads fields 1..=N of a small message, last occurrence wins.
fn small_fields<'a, const N: usize>(
    data: &'a [u8],
) -> Result<[Option<WireValue<'a>>; N], CodecError> {
    let mut out = [None; N];
    let mut reader = Reader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        if let Some(slot) = usize::try_from(number)
            .ok()
            .and_then(|n| out.get_mut(n.wrapping_sub(1)))
        {
            *slot = Some(value);
        }
    }
    Ok(out)
}

fn varint_of(value: Option<WireValue<'_>>, path: &Path) -> Result<u64, CodecError> {
    match value {
        None => Ok(0),
        Some(WireValue::Varint(v)) => Ok(v),
        Some(other) => Err(wrong_wire_type(path, &other)),
    }
}

fn bytes_of<'a>(value: Option<WireValue<'a>>, path: &Path) -> Result<&'a [u8], CodecError> {
    match value {
        None => Ok(&[]),
        Some(WireValue::Bytes(b)) => Ok(b),
        Some(other) => Err(wrong_wire_type(path, &other)),
    }
}

/// Types whose Go JSON form is not the plain struct (custom `MarshalJSON`).
/// Returns `Some(result)` when `msg` is one of them.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
fn decode_special(
    msg: &'static Message,
    data: &[u8],
    path: &mut Path,
) -> Result<Option<Option<Value>>, CodecError> {
    let name = msg.name;
    let value = match name {
        TIME | MICRO_TIME => {
            let [seconds, nanos] = small_fields::<2>(data)?;
            let seconds = varint_of(seconds, path)? as i64;
            let nanos = varint_of(nanos, path)? as i32;
            if seconds == 0 && nanos == 0 {
                // Go writes a zero time as an empty message and JSON `null`.
                None
            } else {
                Some(Value::String(format_time(
                    seconds,
                    nanos,
                    name == MICRO_TIME,
                    path,
                )?))
            }
        }
        DURATION => {
            let [duration] = small_fields::<1>(data)?;
            Some(Value::String(
                go_duration(varint_of(duration, path)? as i64),
            ))
        }
        QUANTITY | QUANTITY_VALUE => {
            let [string] = small_fields::<1>(data)?;
            let s = String::from_utf8_lossy(bytes_of(string, path)?).into_owned();
            // The zero Quantity marshals as "0".
            Some(Value::String(if s.is_empty() { "0".to_owned() } else { s }))
        }
        INT_OR_STRING => {
            let [ty, int_val, str_val] = small_fields::<3>(data)?;
            if varint_of(ty, path)? == 1 {
                let s = String::from_utf8_lossy(bytes_of(str_val, path)?).into_owned();
                Some(Value::String(s))
            } else {
                Some(Value::from(varint_of(int_val, path)? as i32))
            }
        }
        RAW_EXTENSION | FIELDS_V1 => {
            let [raw] = small_fields::<1>(data)?;
            raw_json(bytes_of(raw, path)?, path)?
        }
        _ if schema::is_list_wrapper(name) => {
            let mut items = Vec::new();
            let mut reader = Reader::new(data);
            while let Some((number, value)) = reader.next_field()? {
                if number == 1 {
                    items.push(decode_scalar(Ty::Str, value, path)?);
                }
            }
            Some(Value::Array(items))
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// The JSON held by a `RawExtension`/`FieldsV1`; an embedded protobuf object is decoded too.
fn raw_json(raw: &[u8], path: &Path) -> Result<Option<Value>, CodecError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.starts_with(&crate::MAGIC) {
        let decoded = crate::decode_body(raw, path.depth() + 1)?;
        return Ok(Some(decoded.object));
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| invalid(path, format!("raw data is not valid JSON: {e}")))
}

/// RFC 3339 in UTC, as Go's `metav1.Time` (seconds) and `metav1.MicroTime` (microseconds) write it.
fn format_time(seconds: i64, nanos: i32, micro: bool, path: &Path) -> Result<String, CodecError> {
    // metav1.Time drops the nanoseconds when decoding protobuf; MicroTime truncates to µs.
    let nanos = if micro {
        u32::try_from(nanos).unwrap_or(0) / 1000 * 1000
    } else {
        0
    };
    let time = chrono::DateTime::from_timestamp(seconds, nanos)
        .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| invalid(path, format!("timestamp {seconds} is out of range")))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(time.format(format).to_string())
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1.5s`, `300ms`, `0s`.
pub(crate) fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".to_owned();
    }
    let mut u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let frac = frac_digits(&mut u, prec);
        out.push_str(&u.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let frac = frac_digits(&mut u, 9);
        let secs = u % 60;
        u /= 60;
        let mut s = format!("{secs}{frac}s");
        if u > 0 {
            let mins = u % 60;
            u /= 60;
            s = format!("{mins}m{s}");
            if u > 0 {
                s = format!("{u}h{s}");
            }
        }
        out.push_str(&s);
    }
    if d < 0 {
        out.insert(0, '-');
    }
    out
}

/// Splits off the low `prec` decimal digits of `v` as `.ddd` (trailing zeros removed).
fn frac_digits(v: &mut u64, prec: u32) -> String {
    let mut digits = Vec::new();
    let mut printed = false;
    for _ in 0..prec {
        let digit = *v % 10;
        printed = printed || digit != 0;
        if printed {
            digits.push(char::from(
                b'0' + u8::try_from(digit).expect("a decimal digit"),
            ));
        }
        *v /= 10;
    }
    if digits.is_empty() {
        return String::new();
    }
    digits.push('.');
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-5_000_000_000), "-5s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn times() {
        let p = Path {
            fields: Vec::new(),
            base: 0,
        };
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, false, &p).expect("ok"),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, true, &p).expect("ok"),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            format_time(1, 0, true, &p).expect("ok"),
            "1970-01-01T00:00:01.000000Z"
        );
        assert!(format_time(i64::MAX, 0, false, &p).is_err());
        assert!(format_time(300_000_000_000, 0, false, &p).is_err());
    }
}
