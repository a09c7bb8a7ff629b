//! The plan: a tree of groups and datasets with their attributes, kept in creation order.
//! Everything is validated as it is added, so laying the plan out cannot fail.

use std::collections::HashMap;

use super::messages::{self, StoredType, MAX_RANK};
use crate::dtype::{checked_nbytes, DType};
use crate::error::{Error, Result, ResultExt};
use crate::h5::AttrValue;

pub type NodeId = usize;

/// Longest link name: its link message (name plus 13 bytes of fields) must fit 64 KiB.
const MAX_NAME_BYTES: usize = 65_000;
pub const ROOT: NodeId = 0;

/// An attribute already reduced to its HDF5 parts.
#[derive(Debug, Clone)]
pub struct PlannedAttr {
    pub name: String,
    pub datatype: Vec<u8>,
    pub dataspace: Vec<u8>,
    pub data: AttrData,
}

#[derive(Debug, Clone)]
pub enum AttrData {
    /// Raw element bytes stored in the attribute message.
    Inline(Vec<u8>),
    /// A variable-length string: its bytes go to the global heap, the message holds a reference.
    VlenStr(String),
}

impl PlannedAttr {
    /// The attribute message body, given the global heap reference of a vlen string (address of
    /// its collection and object index); the body's size does not depend on them.
    pub fn message_body(&self, heap_address: u64, heap_index: u32) -> Result<Vec<u8>> {
        match &self.data {
            AttrData::Inline(bytes) => messages::attribute(&self.name, &self.datatype, &self.dataspace, bytes),
            AttrData::VlenStr(s) => {
                let mut reference = Vec::with_capacity(16);
                // length in bytes (bounded by the heap's own limits checked in `plan_attr`)
                reference.extend_from_slice(&(s.len() as u32).to_le_bytes());
                reference.extend_from_slice(&heap_address.to_le_bytes());
                reference.extend_from_slice(&heap_index.to_le_bytes());
                messages::attribute(&self.name, &self.datatype, &self.dataspace, &reference)
            }
        }
    }
}

#[derive(Debug)]
pub enum Body<'a> {
    Group { members: Vec<(String, NodeId)> },
    Dataset { stored: StoredType, shape: Vec<u64>, data: &'a [u8] },
}

#[derive(Debug)]
pub struct Node<'a> {
    pub body: Body<'a>,
    pub attrs: Vec<PlannedAttr>,
}

/// All nodes; `nodes[ROOT]` is the root group and every parent precedes its children.
#[derive(Debug)]
pub struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    children: HashMap<(NodeId, String), NodeId>,
}

/// Split a '/'-separated path into its link names ("/a//b/" -> ["a", "b"]), refusing names HDF5
/// cannot hold or would read differently.
fn components(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        if *part == "." {
            return Err(Error::invalid(format!("path '{path}' has a '.' component, which HDF5 reads as the group itself")));
        }
        if part.contains('\0') {
            return Err(Error::invalid(format!("path '{path}' contains a NUL byte")));
        }
        if part.len() > MAX_NAME_BYTES {
            return Err(Error::invalid(format!(
                "a name in path '{}...' has {} bytes; a link message holds at most {MAX_NAME_BYTES}",
                path.chars().take(40).collect::<String>(),
                part.len()
            )));
        }
    }
    Ok(parts)
}

fn join(parts: &[&str]) -> String {
    format!("/{}", parts.join("/"))
}

impl<'a> Default for Tree<'a> {
    fn default() -> Self {
        Tree {
            nodes: vec![Node { body: Body::Group { members: Vec::new() }, attrs: Vec::new() }],
            children: HashMap::new(),
        }
    }
}

impl<'a> Tree<'a> {
    fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        self.children.get(&(parent, name.to_string())).copied()
    }

    fn add_child(&mut self, parent: NodeId, name: &str, node: Node<'a>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(node);
        self.children.insert((parent, name.to_string()), id);
        if let Some(Node { body: Body::Group { members }, .. }) = self.nodes.get_mut(parent) {
            members.push((name.to_string(), id));
        }
        id
    }

    /// The group at `parts`, created with its parents as needed.
    fn ensure_group(&mut self, parts: &[&str]) -> Result<NodeId> {
        let mut at = ROOT;
        for (depth, name) in parts.iter().enumerate() {
            at = match self.child(at, name) {
                Some(id) => match self.nodes.get(id).map(|n| &n.body) {
                    Some(Body::Group { .. }) => id,
                    _ => {
                        return Err(Error::invalid(format!("'{}' is a dataset, not a group", join(&parts[..=depth]))))
                    }
                },
                None => {
                    let node = Node { body: Body::Group { members: Vec::new() }, attrs: Vec::new() };
                    self.add_child(at, name, node)
                }
            };
        }
        Ok(at)
    }

    pub fn create_group(&mut self, path: &str) -> Result<()> {
        let parts = components(path)?;
        self.ensure_group(&parts).map(|_| ())
    }

    pub fn create_dataset(&mut self, path: &str, dtype: DType, shape: &[u64], data: &'a [u8]) -> Result<()> {
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(Error::invalid(format!("dataset path '{path}' names the root group")));
        };
        let full = join(&parts);
        if shape.len() > MAX_RANK {
            return Err(Error::invalid(format!("shape {shape:?} has more than {MAX_RANK} dimensions")).in_object(full));
        }
        let stored = StoredType::of(dtype).in_object(&full)?;
        let expected = checked_nbytes(shape, dtype).in_object(&full)?;
        if data.len() as u64 != expected {
            return Err(Error::invalid(format!(
                "data has {} bytes, but shape {shape:?} of {} needs {expected}",
                data.len(),
                dtype.numpy_name()
            ))
            .in_object(full));
        }
        let parent = self.ensure_group(parents)?;
        if self.child(parent, name).is_some() {
            return Err(Error::invalid("an object with this name already exists").in_object(full));
        }
        let node = Node { body: Body::Dataset { stored, shape: shape.to_vec(), data }, attrs: Vec::new() };
        self.add_child(parent, name, node);
        Ok(())
    }

    pub fn set_attr(&mut self, path: &str, name: &str, value: AttrValue) -> Result<()> {
        let parts = components(path)?;
        let full = join(&parts);
        let mut at = ROOT;
        for part in &parts {
            at = self.child(at, part).ok_or_else(|| Error::not_found("no group or dataset at this path").in_object(&full))?;
        }
        let attr = plan_attr(name, value).in_object(&full)?;
        let node = self.nodes.get_mut(at).ok_or_else(|| Error::not_found("no such object").in_object(&full))?;
        match node.attrs.iter_mut().find(|a| a.name == attr.name) {
            Some(existing) => *existing = attr,
            None => node.attrs.push(attr),
        }
        Ok(())
    }
}

/// Reduce an attribute value to datatype, dataspace and data, refusing what cannot be stored.
fn plan_attr(name: &str, value: AttrValue) -> Result<PlannedAttr> {
    if name.is_empty() {
        return Err(Error::invalid("attribute name is empty"));
    }
    if name.contains('\0') {
        return Err(Error::invalid(format!("attribute name {name:?} contains a NUL byte")));
    }
    let (stored, shape, data) = match value {
        AttrValue::Str(s) => {
            if s.len() > u32::MAX as usize {
                return Err(Error::invalid(format!("attribute '{name}': string of {} bytes exceeds 4 GiB", s.len())));
            }
            (StoredType::VlenUtf8, Vec::new(), AttrData::VlenStr(s))
        }
        AttrValue::StrArray(items) => {
            // HDF5 strings are at least one byte long.
            let len = items.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
            let utf8 = items.iter().any(|s| !s.is_ascii());
            let mut bytes = Vec::with_capacity(len.saturating_mul(items.len()));
            for s in &items {
                bytes.extend_from_slice(s.as_bytes());
                bytes.resize(bytes.len() + (len - s.len()), 0);
            }
            let len = u32::try_from(len).map_err(|_| Error::invalid(format!("attribute '{name}': a string exceeds 4 GiB")))?;
            (StoredType::FixedString { len, utf8 }, vec![items.len() as u64], AttrData::Inline(bytes))
        }
        AttrValue::Numeric { dtype, shape, data } => {
            if shape.len() > MAX_RANK {
                return Err(Error::invalid(format!("attribute '{name}': shape {shape:?} has more than {MAX_RANK} dimensions")));
            }
            let stored = StoredType::of(dtype)?;
            let expected = checked_nbytes(&shape, dtype)?;
            if data.len() as u64 != expected {
                return Err(Error::invalid(format!(
                    "attribute '{name}': data has {} bytes, but shape {shape:?} of {} needs {expected}",
                    data.len(),
                    dtype.numpy_name()
                )));
            }
            (stored, shape, AttrData::Inline(data))
        }
    };
    let attr = PlannedAttr { name: name.to_string(), datatype: stored.encode(), dataspace: messages::dataspace(&shape), data };
    // An attribute message body is limited to 64 KiB by its 16-bit size field.
    let body = attr.message_body(0, 0)?;
    if body.len() > 0xFFFF {
        return Err(Error::invalid(format!(
            "attribute '{name}' needs {} bytes, more than the 65535 an HDF5 attribute message holds \
             (store long text as a single str, or split the array as Keras does)",
            body.len()
        )));
    }
    Ok(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_created_with_parents_in_order() {
        let mut t = Tree::default();
        t.create_group("/b/x").unwrap();
        t.create_group("a").unwrap();
        t.create_group("b//y/").unwrap();
        let members = |id: NodeId| match &t.nodes[id].body {
            Body::Group { members } => members.iter().map(|m| (m.0.clone(), m.1)).collect::<Vec<_>>(),
            _ => panic!("not a group"),
        };
        assert_eq!(t.nodes.len(), 5);
        assert_eq!(members(ROOT), [("b".to_string(), 1), ("a".to_string(), 3)]);
        assert_eq!(members(1), [("x".to_string(), 2), ("y".to_string(), 4)]);
    }

    #[test]
    fn conflicts_name_the_path() {
        let mut t = Tree::default();
        let data = [0u8; 4];
        t.create_dataset("a/d", DType::F32, &[1], &data).unwrap();
        let e = t.create_dataset("a/d", DType::F32, &[1], &data).unwrap_err();
        assert!(e.to_string().contains("/a/d"), "{e}");
        let e = t.create_group("a/d/e").unwrap_err();
        assert!(e.to_string().contains("'/a/d' is a dataset"), "{e}");
        assert!(t.create_dataset("/", DType::F32, &[1], &data).is_err());
        assert!(t.create_group("a/./b").is_err());
        assert!(t.create_group(&"n".repeat(70_000)).is_err());
        t.create_group(&"n".repeat(65_000)).unwrap();
    }

    #[test]
    fn size_mismatch_names_both_sizes() {
        let mut t = Tree::default();
        let e = t.create_dataset("w", DType::F32, &[2, 3], &[0u8; 20]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/w") && msg.contains("20") && msg.contains("24"), "{msg}");
    }

    #[test]
    fn attributes_replace_and_check_limits() {
        let mut t = Tree::default();
        t.set_attr("/", "a", AttrValue::Str("x".into())).unwrap();
        t.set_attr("/", "a", AttrValue::Str("y".into())).unwrap();
        assert_eq!(t.nodes[0].attrs.len(), 1);
        let e = t.set_attr("/missing", "a", AttrValue::Str("x".into())).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::NotFound);
        let huge = AttrValue::StrArray(vec!["n".repeat(100); 1000]);
        let e = t.set_attr("/", "names", huge).unwrap_err();
        assert!(e.to_string().contains("65535"), "{e}");
        // a long str goes to the global heap, so it is fine
        t.set_attr("/", "config", AttrValue::Str("c".repeat(1 << 20))).unwrap();
        let bad = AttrValue::Numeric { dtype: DType::I32, shape: vec![2], data: vec![0; 4] };
        assert!(t.set_attr("/", "n", bad).is_err());
    }
}
