//! AMF0 values (Action Message Format, version 0), as used by RTMP commands and FLV script
//! data (`onMetaData`).
//!
//! Reading is tolerant: long strings and XML documents read as [`Amf0Value::String`], dates as
//! [`Amf0Value::Number`] (milliseconds; the time zone is dropped), typed objects as
//! [`Amf0Value::Object`], references and "unsupported" as [`Amf0Value::Undefined`]. Writing
//! produces plain AMF0 (strings longer than 65535 bytes become long strings).

use bytes::{BufMut, BytesMut};

/// How deep objects and arrays may nest before the input is refused.
const MAX_DEPTH: usize = 64;

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
}

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Anonymous object: properties in wire order.
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Associative ("ECMA") array, e.g. the body of `onMetaData`.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
}

/// Why AMF0 input could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0 input ends inside a value")]
    Truncated,
    #[error("unknown or unsupported AMF0 marker 0x{0:02x}")]
    UnknownMarker(u8),
    #[error("AMF0 values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("AMF0 object end marker outside an object")]
    UnexpectedObjectEnd,
}

impl Amf0Value {
    /// The property `key` of an object or ECMA array (first match), else `None`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a number value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The flag of a boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// A string value from anything string-like.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// Reads every value in `input` (e.g. a command message body) in order.
pub fn read_values(input: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut rest = input;
    let mut values = Vec::new();
    while !rest.is_empty() {
        values.push(read_value(&mut rest)?);
    }
    Ok(values)
}

/// Reads one value from the front of `input` and advances it past the value.
pub fn read_value(input: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    read_nested(input, 0)
}

/// Appends `values` in AMF0 encoding to `out`.
pub fn write_values(out: &mut BytesMut, values: &[Amf0Value]) {
    for v in values {
        write_value(out, v);
    }
}

/// Appends one value in AMF0 encoding to `out`.
pub fn write_value(out: &mut BytesMut, value: &Amf0Value) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(marker::STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(marker::LONG_STRING);
                put_long_str(out, s);
            }
        },
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            write_properties(out, props);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            write_properties(out, props);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                write_value(out, item);
            }
        }
    }
}

fn write_properties(out: &mut BytesMut, props: &[(String, Amf0Value)]) {
    for (key, value) in props {
        // Property names are short strings; a longer one is cut at a char boundary.
        let mut end = key.len().min(usize::from(u16::MAX));
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        out.put_u16(end as u16);
        out.put_slice(&key.as_bytes()[..end]);
        write_value(out, value);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

fn put_long_str(out: &mut BytesMut, s: &str) {
    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.put_slice(s.as_bytes());
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if input.len() < n {
        return Err(AmfError::Truncated);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_u8(input: &mut &[u8]) -> Result<u8, AmfError> {
    Ok(take(input, 1)?[0])
}

fn take_u16(input: &mut &[u8]) -> Result<u16, AmfError> {
    let b = take(input, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn take_u32(input: &mut &[u8]) -> Result<u32, AmfError> {
    let b = take(input, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_f64(input: &mut &[u8]) -> Result<f64, AmfError> {
    let b = take(input, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(f64::from_be_bytes(a))
}

fn take_str(input: &mut &[u8], len: usize) -> Result<String, AmfError> {
    Ok(String::from_utf8_lossy(take(input, len)?).into_owned())
}

fn read_nested(input: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::TooDeep);
    }
    let m = take_u8(input)?;
    Ok(match m {
        marker::NUMBER => Amf0Value::Number(take_f64(input)?),
        marker::BOOLEAN => Amf0Value::Boolean(take_u8(input)? != 0),
        marker::STRING => {
            let len = take_u16(input)?;
            Amf0Value::String(take_str(input, usize::from(len))?)
        }
        marker::OBJECT => Amf0Value::Object(read_properties(input, depth)?),
        marker::MOVIECLIP | marker::NULL => Amf0Value::Null,
        marker::UNDEFINED | marker::UNSUPPORTED => Amf0Value::Undefined,
        marker::REFERENCE => {
            take_u16(input)?;
            Amf0Value::Undefined
        }
        marker::ECMA_ARRAY => {
            // The count is only a hint (encoders get it wrong); the end marker decides.
            take_u32(input)?;
            Amf0Value::EcmaArray(read_properties(input, depth)?)
        }
        marker::OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
        marker::STRICT_ARRAY => {
            let count = take_u32(input)?;
            // No preallocation from the count: each item takes at least one byte of input.
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(read_nested(input, depth + 1)?);
            }
            Amf0Value::StrictArray(items)
        }
        marker::DATE => {
            let ms = take_f64(input)?;
            take_u16(input)?;
            Amf0Value::Number(ms)
        }
        marker::LONG_STRING | marker::XML_DOCUMENT => {
            let len = take_u32(input)?;
            let len = usize::try_from(len).map_err(|_| AmfError::Truncated)?;
            Amf0Value::String(take_str(input, len)?)
        }
        marker::TYPED_OBJECT => {
            let len = take_u16(input)?;
            take(input, usize::from(len))?;
            Amf0Value::Object(read_properties(input, depth)?)
        }
        other => return Err(AmfError::UnknownMarker(other)),
    })
}

/// Reads `name value` pairs up to the empty name + object end marker.
fn read_properties(input: &mut &[u8], depth: usize) -> Result<Vec<(String, Amf0Value)>, AmfError> {
    let mut props = Vec::new();
    loop {
        let len = take_u16(input)?;
        if len == 0 {
            // Empty key: normally followed by the end marker. Some encoders omit it at the
            // very end of the input; accept that too.
            match input.first() {
                Some(&marker::OBJECT_END) => {
                    *input = &input[1..];
                    return Ok(props);
                }
                None => return Ok(props),
                Some(_) => {
                    let value = read_nested(input, depth + 1)?;
                    props.push((String::new(), value));
                    continue;
                }
            }
        }
        let key = take_str(input, usize::from(len))?;
        let value = read_nested(input, depth + 1)?;
        props.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[Amf0Value]) -> Vec<Amf0Value> {
        let mut out = BytesMut::new();
        write_values(&mut out, values);
        read_values(&out).expect("own encoding reads back")
    }

    #[test]
    fn scalars_round_trip() {
        let values = vec![
            Amf0Value::Number(3.5),
            Amf0Value::Number(-0.0),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(false),
            Amf0Value::string("connect"),
            Amf0Value::string("häßlich ✓"),
            Amf0Value::Null,
            Amf0Value::Undefined,
        ];
        assert_eq!(round_trip(&values), values);
    }

    #[test]
    fn nested_round_trip_and_get() {
        let meta = Amf0Value::EcmaArray(vec![
            ("width".into(), Amf0Value::Number(320.0)),
            ("videocodecid".into(), Amf0Value::Number(7.0)),
            (
                "inner".into(),
                Amf0Value::object([
                    ("a", Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null])),
                    ("b", Amf0Value::string("x")),
                ]),
            ),
        ]);
        let values = vec![Amf0Value::string("onMetaData"), meta.clone()];
        let back = round_trip(&values);
        assert_eq!(back, values);
        assert_eq!(back[1].get("width").and_then(Amf0Value::as_f64), Some(320.0));
        assert_eq!(back[1].get("inner").and_then(|o| o.get("b")).and_then(Amf0Value::as_str), Some("x"));
        assert!(back[1].get("missing").is_none());
        assert!(back[0].get("width").is_none());
    }

    #[test]
    fn exact_bytes_of_a_small_object() {
        let mut out = BytesMut::new();
        write_value(&mut out, &Amf0Value::object([("a", Amf0Value::Boolean(true))]));
        assert_eq!(&out[..], &[0x03, 0x00, 0x01, b'a', 0x01, 0x01, 0x00, 0x00, 0x09]);
    }

    #[test]
    fn long_string_written_and_read() {
        let long = "x".repeat(70_000);
        let mut out = BytesMut::new();
        write_value(&mut out, &Amf0Value::string(long.clone()));
        assert_eq!(out[0], marker::LONG_STRING);
        assert_eq!(read_values(&out).unwrap(), vec![Amf0Value::String(long)]);
    }

    #[test]
    fn date_typed_object_and_reference_read_tolerantly() {
        let mut input = vec![marker::DATE];
        input.extend_from_slice(&1234.0f64.to_be_bytes());
        input.extend_from_slice(&[0, 0]);
        input.extend_from_slice(&[marker::TYPED_OBJECT, 0, 1, b'C', 0, 1, b'k', 0x05, 0, 0, 9]);
        input.extend_from_slice(&[marker::REFERENCE, 0, 3]);
        input.extend_from_slice(&[marker::XML_DOCUMENT, 0, 0, 0, 2, b'<', b'>']);
        let v = read_values(&input).unwrap();
        assert_eq!(
            v,
            vec![
                Amf0Value::Number(1234.0),
                Amf0Value::Object(vec![("k".into(), Amf0Value::Null)]),
                Amf0Value::Undefined,
                Amf0Value::string("<>"),
            ]
        );
    }

    #[test]
    fn ecma_array_with_wrong_count_and_missing_end() {
        // Count says 5 but one property; end marker absent at end of input.
        let input = [marker::ECMA_ARRAY, 0, 0, 0, 5, 0, 1, b'k', 0x05, 0, 0];
        assert_eq!(read_values(&input).unwrap(), vec![Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Null)])]);
    }

    #[test]
    fn truncated_and_garbage_input_are_errors() {
        let mut out = BytesMut::new();
        write_values(
            &mut out,
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::object([("app", Amf0Value::string("live"))]),
            ],
        );
        // A prefix reads only when cut between values (10 = after the string, 19 = after
        // the number) or just before the final end marker (tolerated); otherwise it fails.
        for cut in 1..out.len() {
            let ok = read_values(&out[..cut]).is_ok();
            assert_eq!(ok, cut == 10 || cut == 19 || cut == out.len() - 1, "cut at {cut}");
        }
        assert_eq!(read_values(&[0x02, 0x00, 0x05, b'a']), Err(AmfError::Truncated));
        assert_eq!(read_values(&[0x42]), Err(AmfError::UnknownMarker(0x42)));
        assert_eq!(read_values(&[0x09]), Err(AmfError::UnexpectedObjectEnd));
        assert_eq!(read_values(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]), Err(AmfError::Truncated));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let input = [marker::STRICT_ARRAY, 0, 0, 0, 1].repeat(10_000);
        assert_eq!(read_values(&input), Err(AmfError::TooDeep));
    }
}
