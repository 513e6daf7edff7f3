//! ONNX: the top-level fields of a `ModelProto`, read without the graph.
//!
//! An ONNX file is a protobuf message with no magic number. It is recognised by
//! walking its top-level fields: every field number must be one `ModelProto`
//! defines, with the wire type the schema gives it, and every length must fit
//! in the file; `ir_version` must be present. Length-delimited fields (the
//! graph, often most of the file) are skipped with a seek, so this costs a few
//! reads whatever the model's size.

use std::{
    io::{BufReader, Read, Seek},
    path::Path,
};

use crate::{Error, Result};

/// What the top level of an ONNX model says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnnxHeader {
    /// `ir_version`.
    pub ir_version: u64,
    /// `producer_name`, e.g. `pytorch`.
    pub producer_name: String,
    /// `producer_version`.
    pub producer_version: String,
    /// Operator sets: (domain, version); the default domain is "".
    pub opsets: Vec<(String, u64)>,
    /// Size of the graph in bytes.
    pub graph_bytes: u64,
}

// ModelProto field numbers and their wire types (0 varint, 2 length-delimited).
fn expected_wire_type(field: u64) -> Option<u8> {
    match field {
        1 | 5 => Some(0),                           // ir_version, model_version
        2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 => Some(2), // names, doc, graph, opset_import, metadata, training, functions
        _ => None,
    }
}

const MAX_SMALL_FIELD: u64 = 1 << 20;

fn varint(r: &mut impl Read) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b).ok()?;
        value |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Cheap check on the first bytes: an ONNX model starts with `ir_version` (field 1, varint).
pub fn may_be_onnx(head: &[u8]) -> bool {
    head.first() == Some(&0x08)
}

impl OnnxHeader {
    /// Read the top-level fields of `path`; an error when it is not an ONNX model.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut r = BufReader::new(file);
        let not_onnx = |why: String| Error::Corrupt(format!("not an ONNX model: {why}"));
        let mut header = Self::default();
        let mut saw_ir = false;
        let mut pos = 0u64;
        while pos < size {
            let key = varint(&mut r).ok_or_else(|| not_onnx("unreadable field key".into()))?;
            let (field, wire) = (key >> 3, (key & 7) as u8);
            if expected_wire_type(field) != Some(wire) {
                return Err(not_onnx(format!("field {field} with wire type {wire} at byte {pos}")));
            }
            if wire == 0 {
                let v = varint(&mut r).ok_or_else(|| not_onnx("unreadable varint".into()))?;
                if field == 1 {
                    header.ir_version = v;
                    saw_ir = true;
                }
            } else {
                let len = varint(&mut r).ok_or_else(|| not_onnx("unreadable length".into()))?;
                let here = r.stream_position().map_err(io)?;
                if here.checked_add(len).is_none_or(|end| end > size) {
                    return Err(Error::Truncated { needed: here.saturating_add(len), actual: size });
                }
                match field {
                    2 | 3 | 8 if len <= MAX_SMALL_FIELD => {
                        let mut bytes = vec![0u8; len as usize];
                        r.read_exact(&mut bytes).map_err(io)?;
                        match field {
                            2 => header.producer_name = String::from_utf8_lossy(&bytes).into_owned(),
                            3 => header.producer_version = String::from_utf8_lossy(&bytes).into_owned(),
                            _ => header.opsets.push(opset(&bytes)),
                        }
                    }
                    _ => {
                        if field == 7 {
                            header.graph_bytes = len;
                        }
                        r.seek_relative(len as i64).map_err(io)?;
                    }
                }
            }
            pos = r.stream_position().map_err(io)?;
        }
        if !saw_ir {
            return Err(not_onnx("no ir_version".into()));
        }
        Ok(header)
    }
}

/// Decode an `OperatorSetIdProto`: domain (field 1, string), version (field 2, varint).
fn opset(mut bytes: &[u8]) -> (String, u64) {
    let (mut domain, mut version) = (String::new(), 0);
    while let Some(key) = varint(&mut bytes) {
        match (key >> 3, key & 7) {
            (1, 2) => {
                let Some(len) = varint(&mut bytes) else { break };
                let len = (len as usize).min(bytes.len());
                domain = String::from_utf8_lossy(&bytes[..len]).into_owned();
                bytes = &bytes[len..];
            }
            (2, 0) => version = varint(&mut bytes).unwrap_or(0),
            _ => break,
        }
    }
    (domain, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, key: u8, payload: &[u8]) {
        out.push(key);
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
    }

    fn tiny_model() -> Vec<u8> {
        let mut m = vec![0x08, 0x07]; // ir_version 7
        field(&mut m, 0x12, b"pytorch");
        field(&mut m, 0x1a, b"2.1");
        field(&mut m, 0x3a, &[0u8; 20]); // graph
        field(&mut m, 0x42, &[0x0a, 0x00, 0x10, 0x0d]); // opset "" v13
        m
    }

    #[test]
    fn reads_top_level_fields() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), tiny_model()).unwrap();
        let h = OnnxHeader::read(f.path()).unwrap();
        assert_eq!(h.ir_version, 7);
        assert_eq!(h.producer_name, "pytorch");
        assert_eq!(h.opsets, [(String::new(), 13)]);
        assert_eq!(h.graph_bytes, 20);
    }

    #[test]
    fn rejects_other_files_and_truncation() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut m = tiny_model();
        m.truncate(m.len() - 3);
        std::fs::write(f.path(), &m).unwrap();
        assert!(matches!(OnnxHeader::read(f.path()), Err(Error::Truncated { .. })));
        std::fs::write(f.path(), b"\x08hello world, this is text").unwrap();
        assert!(OnnxHeader::read(f.path()).is_err());
        std::fs::write(f.path(), b"").unwrap();
        assert!(OnnxHeader::read(f.path()).is_err());
    }
}
