//! The reader against the shared corpus's INVENTORY.json (written by h5py from real Keras
//! files): every dataset's shape and dtype, and every attribute listed, for every `.h5` file
//! and every `.keras` archive's `model.weights.h5`. Skips (saying so) when the corpus is absent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use super::{H5File, Kind};
use crate::dtype::checked_nbytes;
use crate::h5::AttrValue;
use crate::storage::Storage;

fn fixtures() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().ok()?;
    repo.ancestors().map(|p| p.join("shared/interop/fixtures")).find(|p| p.join("INVENTORY.json").is_file())
}

fn check(file: &H5File, name: &str, expected: &Value) {
    let datasets = expected["datasets"].as_object().expect("datasets");
    let found: BTreeMap<String, Kind> = file.visit().unwrap_or_else(|e| panic!("{name}: {e}")).into_iter().collect();
    let found_datasets: Vec<&String> = found.iter().filter(|(_, k)| **k == Kind::Dataset).map(|(p, _)| p).collect();
    let want: Vec<&String> = datasets.keys().collect();
    assert_eq!(found_datasets, want, "{name}: datasets");
    for (path, spec) in datasets {
        let info = file.dataset(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<u64> = spec[0].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(info.shape, shape, "{name}:{path}");
        assert_eq!(info.dtype.numpy_name(), spec[1].as_str().unwrap(), "{name}:{path}");
        let data = file.read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(data.bytes().len() as u64, checked_nbytes(&shape, info.dtype).unwrap(), "{name}:{path}");
    }
    for (key, want) in expected["attributes"].as_object().expect("attributes") {
        let (obj, attr) = key.rsplit_once('@').unwrap();
        let attrs = file.attrs(obj).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = attrs.iter().find(|(n, _)| n == attr).map(|(_, v)| v).unwrap_or_else(|| panic!("{name}: no {key}"));
        match (got, want) {
            (AttrValue::Str(s), Value::String(w)) if w == "<json>" => {
                assert!(serde_json::from_str::<Value>(s).is_ok(), "{name}:{key} is not JSON")
            }
            (AttrValue::Str(s), Value::String(w)) => assert_eq!(s, w, "{name}:{key}"),
            (AttrValue::StrArray(list), Value::Array(w)) => {
                let w: Vec<&str> = w.iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(list, &w, "{name}:{key}");
            }
            // An empty string list is stored by h5py as a numeric empty array.
            (AttrValue::Numeric { shape, .. }, Value::Array(w)) if w.is_empty() => {
                assert_eq!(shape.iter().product::<u64>(), 0, "{name}:{key}")
            }
            (got, want) => panic!("{name}:{key}: got {got:?}, inventory says {want}"),
        }
    }
}

#[test]
fn corpus_matches_inventory() {
    let Some(dir) = fixtures() else {
        eprintln!("skipped: shared corpus (../shared/interop/fixtures) not present");
        return;
    };
    let inventory: Value = serde_json::from_slice(&std::fs::read(dir.join("INVENTORY.json")).unwrap()).unwrap();
    let mut checked = 0;
    let mut views = 0;
    for (name, expected) in inventory.as_object().unwrap() {
        let path = dir.join(name);
        if name.ends_with(".h5") {
            let file = H5File::open(&path).unwrap_or_else(|e| panic!("{e}"));
            check(&file, name, expected);
            checked += 1;
        } else if name.ends_with(".keras") && expected.get("model.weights.h5").is_some() {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
            let mut entry = zip.by_name("model.weights.h5").unwrap();
            let (start, stored) = (entry.data_start().unwrap(), entry.compression() == zip::CompressionMethod::Stored);
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let file = H5File::from_range(Storage::from_vec(bytes.clone(), name.clone()).full()).unwrap_or_else(|e| panic!("{e}"));
            check(&file, name, &expected["model.weights.h5"]);
            if stored {
                // In place inside the mapped archive: views point into the entry's bytes.
                let map = Storage::map(&path).unwrap();
                let entry_range = map.range(start, bytes.len() as u64).unwrap();
                let file = H5File::from_range(entry_range).unwrap_or_else(|e| panic!("{e}"));
                check(&file, name, &expected["model.weights.h5"]);
                for (p, _) in file.visit().unwrap().into_iter().filter(|(_, k)| *k == Kind::Dataset) {
                    if let super::Data::View(v) = file.read(&p).unwrap() {
                        assert!(v.storage().is_mapped());
                        assert!(v.start() >= start && v.start() + v.len() <= start + bytes.len() as u64, "{name}:{p}");
                        let rel = (v.start() - start) as usize;
                        assert_eq!(v.bytes(), &bytes[rel..rel + v.len() as usize]);
                        views += 1;
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} corpus files checked");
    assert!(views > 0, "no zero-copy view was checked");
}
