//! safetensors files: tensors as zero-copy views of the mapped file, and writing through a
//! temporary file renamed into place.
//!
//! The header is checked here first, so that every refusal names the tensor and the offending
//! offsets; the `safetensors` crate then validates the same bytes as a second opinion, and
//! writes files (streaming from borrowed slices).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype as StDtype, View};
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::dtype::{checked_nbytes, DType};
use crate::error::{Error, Result, ResultExt};
use crate::storage::{ByteRange, Storage};

/// Upper bound on the JSON header, as in the reference implementation.
pub const MAX_HEADER_LEN: u64 = 100_000_000;
const LEN_PREFIX: u64 = 8;

/// One tensor of a loaded file: its bytes are a view of the file.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub data: ByteRange,
}

/// A loaded file: tensors in file order, and the optional `__metadata__` strings.
#[derive(Debug, Clone)]
pub struct SafeTensors {
    pub tensors: Vec<Tensor>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A tensor to write, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [u64],
    pub data: &'a [u8],
}

/// Map the file at `path` and validate it.
pub fn load(path: impl AsRef<Path>) -> Result<SafeTensors> {
    from_storage(Storage::map(path)?)
}

/// Validate a safetensors file already in memory; tensors view `storage`.
pub fn from_storage(storage: Storage) -> Result<SafeTensors> {
    let label = storage.label().to_string();
    parse(&storage).in_file(label)
}

fn dtype_from_name(name: &str) -> Result<DType> {
    Ok(match name {
        "BOOL" => DType::Bool,
        "U8" => DType::U8,
        "I8" => DType::I8,
        "U16" => DType::U16,
        "I16" => DType::I16,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "U32" => DType::U32,
        "I32" => DType::I32,
        "F32" => DType::F32,
        "U64" => DType::U64,
        "I64" => DType::I64,
        "F64" => DType::F64,
        other => return Err(Error::unsupported(format!("dtype '{other}' is not supported"))),
    })
}

fn dtype_to_crate(dtype: DType) -> StDtype {
    match dtype {
        DType::Bool => StDtype::BOOL,
        DType::U8 => StDtype::U8,
        DType::I8 => StDtype::I8,
        DType::U16 => StDtype::U16,
        DType::I16 => StDtype::I16,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::U32 => StDtype::U32,
        DType::I32 => StDtype::I32,
        DType::F32 => StDtype::F32,
        DType::U64 => StDtype::U64,
        DType::I64 => StDtype::I64,
        DType::F64 => StDtype::F64,
    }
}

/// A JSON object's members in file order; refuses duplicate keys (a reader that keeps the
/// first and one that keeps the last would otherwise see different files).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Members, A::Error> {
                let mut seen = HashSet::new();
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key '{key}'")));
                    }
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct Declared {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

fn parse(storage: &Storage) -> Result<SafeTensors> {
    let file_len = storage.len();
    let prefix = storage.range(0, LEN_PREFIX).map_err(|_| {
        Error::corrupt(format!(
            "file of {file_len} bytes is too short for the 8-byte header length"
        ))
    })?;
    let header_len = u64::from_le_bytes(
        prefix
            .bytes()
            .try_into()
            .map_err(|_| Error::corrupt("short length prefix"))?,
    );
    if header_len > MAX_HEADER_LEN {
        return Err(Error::refused(format!(
            "header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"
        ))
        .at(0));
    }
    let header = storage.range(LEN_PREFIX, header_len).map_err(|_| {
        Error::corrupt(format!(
            "header length {header_len} runs past the end of the file ({file_len} bytes)"
        ))
        .at(0)
    })?;
    let data_start = LEN_PREFIX + header_len;
    let data_len = file_len - data_start;

    let Members(members) = serde_json::from_slice(header.bytes())
        .map_err(|e| Error::corrupt(format!("header is not a valid JSON object: {e}")).at(LEN_PREFIX))?;

    let mut metadata = None;
    let mut declared = Vec::with_capacity(members.len());
    for (name, value) in members {
        if name == "__metadata__" {
            metadata = Some(parse_metadata(value).in_object("__metadata__").at(LEN_PREFIX)?);
        } else {
            let d = parse_tensor_info(&name, &value).in_object(&name).at(LEN_PREFIX)?;
            declared.push(d);
        }
    }

    // In data order, tensors must tile the data section exactly: no overlap, no gap.
    declared.sort_by_key(|d| (d.begin, d.end));
    let mut expected_begin = 0u64;
    for d in &declared {
        if d.end > data_len {
            return Err(Error::corrupt(format!(
                "data_offsets [{}, {}] run past the data section ({data_len} bytes)",
                d.begin, d.end
            ))
            .in_object(&d.name)
            .at(data_start.saturating_add(d.begin)));
        }
        if d.begin != expected_begin {
            let what = if d.begin < expected_begin {
                "overlaps the previous tensor"
            } else {
                "leaves a gap after the previous tensor"
            };
            return Err(Error::corrupt(format!(
                "data_offsets [{}, {}] {what} (expected to begin at {expected_begin})",
                d.begin, d.end
            ))
            .in_object(&d.name)
            .at(data_start + d.begin));
        }
        expected_begin = d.end;
    }
    if expected_begin != data_len {
        return Err(Error::corrupt(format!(
            "tensors cover {expected_begin} bytes of a {data_len}-byte data section (trailing bytes)"
        ))
        .at(data_start + expected_begin));
    }

    // Second opinion from the reference implementation on the same bytes.
    safetensors::SafeTensors::read_metadata(storage.bytes())
        .map_err(|e| Error::corrupt(format!("rejected by the safetensors validator: {e}")))?;

    let tensors = declared
        .into_iter()
        .map(|d| {
            let data = storage
                .range(data_start + d.begin, d.end - d.begin)
                .in_object(&d.name)?;
            Ok(Tensor {
                name: d.name,
                dtype: d.dtype,
                shape: d.shape,
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SafeTensors { tensors, metadata })
}

fn parse_metadata(value: serde_json::Value) -> Result<BTreeMap<String, String>> {
    let serde_json::Value::Object(map) = value else {
        return Err(Error::corrupt("__metadata__ must be an object of strings"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            _ => Err(Error::corrupt(format!("__metadata__ value of '{k}' is not a string"))),
        })
        .collect()
}

fn parse_tensor_info(name: &str, value: &serde_json::Value) -> Result<Declared> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::corrupt("tensor entry is not an object"))?;
    let dtype_name = obj
        .get("dtype")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::corrupt("missing or non-string 'dtype'"))?;
    let dtype = dtype_from_name(dtype_name)?;
    let shape = obj
        .get("shape")
        .and_then(|v| v.as_array())
        .ok_or_else(|| Error::corrupt("missing or non-list 'shape'"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| Error::corrupt(format!("shape entry {d} is not a non-negative integer")))
        })
        .collect::<Result<Vec<u64>>>()?;
    let offsets = obj
        .get("data_offsets")
        .and_then(|v| v.as_array())
        .filter(|a| a.len() == 2)
        .ok_or_else(|| Error::corrupt("'data_offsets' must be a list [begin, end]"))?;
    let offset = |i: usize| {
        offsets
            .get(i)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::corrupt("'data_offsets' entries must be non-negative integers"))
    };
    let (begin, end) = (offset(0)?, offset(1)?);
    if end < begin {
        return Err(Error::corrupt(format!(
            "data_offsets [{begin}, {end}] end before they begin"
        )));
    }
    let nbytes = checked_nbytes(&shape, dtype)?;
    if nbytes != end - begin {
        return Err(Error::corrupt(format!(
            "shape {shape:?} of {dtype_name} needs {nbytes} bytes but data_offsets [{begin}, {end}] hold {}",
            end - begin
        )));
    }
    Ok(Declared {
        name: name.to_string(),
        dtype,
        shape,
        begin,
        end,
    })
}

/// A caller's tensor, seen through the crate's `View` without copying its bytes.
struct Borrowed<'a> {
    dtype: StDtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl View for Borrowed<'_> {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write `tensors` (and `metadata`) to `path` through a temporary file renamed into place.
pub fn save(
    path: impl AsRef<Path>,
    tensors: &[TensorRef<'_>],
    metadata: Option<&HashMap<String, String>>,
) -> Result<()> {
    let target = path.as_ref();
    let label = target.display().to_string();
    let mut names = HashSet::new();
    let mut views = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name == "__metadata__" || !names.insert(t.name) {
            return Err(Error::invalid("tensor name is reserved or used twice")
                .in_object(t.name)
                .in_file(&label));
        }
        let nbytes = checked_nbytes(t.shape, t.dtype).in_object(t.name)?;
        if nbytes != t.data.len() as u64 {
            return Err(Error::invalid(format!(
                "shape {:?} of {} needs {nbytes} bytes but {} were given",
                t.shape,
                t.dtype.numpy_name(),
                t.data.len()
            ))
            .in_object(t.name)
            .in_file(&label));
        }
        let shape = t
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| Error::invalid("dimension does not fit in memory")))
            .collect::<Result<Vec<_>>>()
            .in_object(t.name)?;
        views.push((
            t.name,
            Borrowed {
                dtype: dtype_to_crate(t.dtype),
                shape,
                data: t.data,
            },
        ));
    }

    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".amber-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(e, "cannot create a temporary file beside the target").in_file(&label))?
        .into_temp_path();
    // With no tensors, the crate writes an empty `__metadata__` map as invalid JSON
    // (`{},"__metadata__":{}}`); an absent map means the same and serializes correctly.
    let metadata = metadata.filter(|m| !(m.is_empty() && views.is_empty())).cloned();
    safetensors::serialize_to_file(views, metadata, &temp).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::io(io, "cannot write").in_file(&label),
        other => Error::invalid(format!("cannot serialize: {other}")).in_file(&label),
    })?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(e, "cannot fsync").in_file(&label))?;
    temp.persist(target)
        .map_err(|e| Error::io(e.error, "cannot rename the temporary file into place").in_file(&label))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Storage {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        Storage::from_vec(bytes, "t.safetensors")
    }

    #[test]
    fn reads_views_in_place() {
        let s = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}"#,
            &[0, 0, 128, 63, 0, 0, 0, 64],
        );
        let st = from_storage(s.clone()).unwrap();
        assert_eq!(st.tensors.len(), 1);
        let t = &st.tensors[0];
        assert_eq!(
            (t.name.as_str(), t.dtype, t.shape.as_slice()),
            ("a", DType::F32, &[2u64][..])
        );
        assert_eq!(t.data.bytes(), &[0, 0, 128, 63, 0, 0, 0, 64]);
        assert_eq!(t.data.start(), s.len() - 8);
        assert_eq!(st.metadata.unwrap().get("k").map(String::as_str), Some("v"));
    }

    fn refused(header: &str, data: &[u8], needle: &str) {
        let err = from_storage(file(header, data)).unwrap_err().to_string();
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert!(err.contains("t.safetensors"), "{err}");
    }

    #[test]
    fn refuses_bad_headers() {
        refused(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 8],
            "overlaps",
        );
        refused(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &[0; 8],
            "gap",
        );
        refused(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 8],
            "trailing",
        );
        refused(
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            &[0; 8],
            "needs 12 bytes",
        );
        refused(
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0; 8],
            "run past",
        );
        refused(
            r#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
            &[0; 8],
            "'C64' is not supported",
        );
        refused(
            r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#,
            &[0; 8],
            "non-negative",
        );
        refused(
            r#"{"a":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
            &[0; 8],
            "2^64",
        );
        refused(
            r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
            &[0; 2],
            "duplicate key 'a'",
        );
        refused(r#"{"__metadata__":{"k":1}}"#, &[], "not a string");
        refused("[1]", &[], "JSON object");
        let mut short = 1_000_000u64.to_le_bytes().to_vec();
        short.extend_from_slice(b"{}");
        let err = from_storage(Storage::from_vec(short, "t.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("runs past the end"), "{err}");
        let huge = Storage::from_vec((MAX_HEADER_LEN + 1).to_le_bytes().to_vec(), "t.safetensors");
        assert!(from_storage(huge)
            .unwrap_err()
            .to_string()
            .contains("exceeds the limit"));
        assert!(from_storage(Storage::from_vec(vec![1, 2], "t")).is_err());
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a: Vec<u8> = (0..24).collect();
        let tensors = [
            TensorRef {
                name: "a",
                dtype: DType::I16,
                shape: &[3, 4],
                data: &a,
            },
            TensorRef {
                name: "s",
                dtype: DType::F64,
                shape: &[],
                data: &a[..8],
            },
            TensorRef {
                name: "e",
                dtype: DType::F32,
                shape: &[0, 5],
                data: &[],
            },
        ];
        let meta = HashMap::from([("format".to_string(), "np".to_string())]);
        save(&path, &tensors, Some(&meta)).unwrap();
        let st = load(&path).unwrap();
        let by_name: HashMap<_, _> = st.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        assert_eq!(by_name["a"].data.bytes(), &a[..]);
        assert_eq!(by_name["s"].shape, Vec::<u64>::new());
        assert_eq!(by_name["e"].shape, vec![0, 5]);
        assert_eq!(st.metadata.unwrap()["format"], "np");
        // no temporary file left beside the target
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_file_with_empty_metadata_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.safetensors");
        save(&path, &[], Some(&HashMap::new())).unwrap();
        let st = load(&path).unwrap();
        assert!(st.tensors.is_empty() && st.metadata.is_none());
    }

    #[test]
    fn save_refuses_wrong_sizes_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let bad = [TensorRef {
            name: "a",
            dtype: DType::F32,
            shape: &[3],
            data: &[0; 8],
        }];
        assert!(save(&path, &bad, None)
            .unwrap_err()
            .to_string()
            .contains("needs 12 bytes"));
        let dup = [
            TensorRef {
                name: "a",
                dtype: DType::U8,
                shape: &[1],
                data: &[0],
            },
            TensorRef {
                name: "a",
                dtype: DType::U8,
                shape: &[1],
                data: &[0],
            },
        ];
        assert!(save(&path, &dup, None).is_err());
        assert!(!path.exists());
    }
}
