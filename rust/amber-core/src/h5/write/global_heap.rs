//! Global heap collections ("GCOL"): where variable-length strings live, so that an attribute
//! holding a large string (a legacy `model_config` JSON can exceed 100 KB) keeps a 16-byte
//! reference in its object header instead of the text.

/// libhdf5 reads at least this many bytes of a collection, so none may be smaller.
const MIN_COLLECTION: u64 = 4096;
/// Start a new collection past this size, so a reader never loads one huge block for a small
/// string (a single larger object still gets a collection of its own).
const SOFT_MAX_COLLECTION: u64 = 1 << 20;
/// Object indices are 16-bit; index 0 is the free-space object.
const MAX_OBJECTS: usize = 0xFFFF;
/// Collection header: "GCOL", version, 3 reserved, collection size.
const COLLECTION_HEADER: u64 = 16;
/// Object header: index (2), reference count (2), reserved (4), size (8).
const OBJECT_HEADER: u64 = 16;

fn padded(len: u64) -> u64 {
    (len + 7) & !7
}

/// Where one stored object ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapRef {
    pub collection: usize,
    /// 1-based object index inside the collection
    pub index: u32,
}

/// The collections to write, filled in plan order.
#[derive(Debug, Default)]
pub struct GlobalHeap<'p> {
    collections: Vec<Vec<&'p [u8]>>,
    used: Vec<u64>,
}

impl<'p> GlobalHeap<'p> {
    /// Store `object` and return where it lives.
    pub fn insert(&mut self, object: &'p [u8]) -> HeapRef {
        let need = OBJECT_HEADER + padded(object.len() as u64);
        let fits = match (self.collections.last(), self.used.last()) {
            (Some(objs), Some(&used)) => objs.len() < MAX_OBJECTS && used + need <= SOFT_MAX_COLLECTION,
            _ => false,
        };
        if !fits {
            self.collections.push(Vec::new());
            self.used.push(COLLECTION_HEADER);
        }
        let k = self.collections.len() - 1;
        self.collections[k].push(object);
        self.used[k] += need;
        HeapRef { collection: k, index: self.collections[k].len() as u32 }
    }

    pub fn collection_count(&self) -> usize {
        self.collections.len()
    }

    /// Size of collection `k` in the file. The bytes after the objects must be either empty
    /// or a whole free-space object (16 bytes at least), so an 8-byte remainder grows to 16.
    pub fn collection_size(&self, k: usize) -> u64 {
        let used = self.used.get(k).copied().unwrap_or(COLLECTION_HEADER);
        let size = used.max(MIN_COLLECTION);
        if size - used == 8 {
            size + 8
        } else {
            size
        }
    }

    /// Append collection `k` to `out`.
    pub fn encode_collection(&self, k: usize, out: &mut Vec<u8>) {
        let size = self.collection_size(k);
        let begin = out.len();
        out.extend_from_slice(b"GCOL");
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.extend_from_slice(&size.to_le_bytes());
        for (i, obj) in self.collections.get(k).into_iter().flatten().enumerate() {
            out.extend_from_slice(&((i + 1) as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // reference count, as libhdf5 inserts
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&(obj.len() as u64).to_le_bytes());
            out.extend_from_slice(obj);
            out.resize(out.len() + (padded(obj.len() as u64) - obj.len() as u64) as usize, 0);
        }
        let free = size - (out.len() - begin) as u64;
        if free > 0 {
            // Object 0 is the free space; its size counts its own header.
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&[0; 6]);
            out.extend_from_slice(&free.to_le_bytes());
            out.resize(begin + size as usize, 0);
        }
        debug_assert_eq!((out.len() - begin) as u64, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_collection_is_padded_to_minimum_with_free_space() {
        let mut h = GlobalHeap::default();
        let r = h.insert(b"dense_1");
        assert_eq!(r, HeapRef { collection: 0, index: 1 });
        let mut out = Vec::new();
        h.encode_collection(0, &mut out);
        assert_eq!(out.len(), 4096);
        assert_eq!(&out[..4], b"GCOL");
        assert_eq!(u64::from_le_bytes(out[8..16].try_into().unwrap()), 4096);
        assert_eq!(u16::from_le_bytes([out[16], out[17]]), 1);
        assert_eq!(u64::from_le_bytes(out[24..32].try_into().unwrap()), 7);
        assert_eq!(&out[32..39], b"dense_1");
        // free-space object right after the padded object
        assert_eq!(u16::from_le_bytes([out[40], out[41]]), 0);
        assert_eq!(u64::from_le_bytes(out[48..56].try_into().unwrap()), 4096 - 40);
    }

    #[test]
    fn large_object_gets_exact_collection() {
        let big = vec![b'x'; 1 << 20];
        let mut h = GlobalHeap::default();
        h.insert(b"a");
        let r = h.insert(&big);
        assert_eq!(r.collection, 1);
        assert_eq!(h.collection_size(1), 16 + 16 + (1 << 20));
        let mut out = Vec::new();
        h.encode_collection(1, &mut out);
        assert_eq!(out.len() as u64, h.collection_size(1));
    }

    #[test]
    fn eight_byte_remainder_becomes_free_object() {
        let mut h = GlobalHeap::default();
        // 16 header + 16 object header + 4056 data = 4088: 8 bytes short of the minimum
        let obj = vec![1u8; 4056];
        h.insert(&obj);
        assert_eq!(h.collection_size(0), 4104);
        let mut out = Vec::new();
        h.encode_collection(0, &mut out);
        assert_eq!(out.len(), 4104);
        assert_eq!(u64::from_le_bytes(out[4088 + 8..4088 + 16].try_into().unwrap()), 16);
    }

    #[test]
    fn index_limit_starts_new_collection() {
        let mut h = GlobalHeap::default();
        let mut last = HeapRef { collection: 0, index: 0 };
        for _ in 0..=MAX_OBJECTS {
            last = h.insert(b"");
        }
        assert_eq!(last, HeapRef { collection: 1, index: 1 });
    }
}
