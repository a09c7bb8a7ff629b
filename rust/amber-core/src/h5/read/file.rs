//! `H5File`: the public reader. Opening parses only the superblock and the root group's
//! header; every other object is read (and cached) when a path first reaches it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::attributes;
use super::dataspace::Dataspace;
use super::datatype::Datatype;
use super::filters::{self, Filter};
use super::layout::{self, Layout, Raw};
use super::links::{self, Link, Target};
use super::object_header::{
    ObjectHeader, FLAG_SHARED, MSG_DATASPACE, MSG_DATATYPE, MSG_EXTERNAL_FILES, MSG_FILL_VALUE, MSG_FILL_VALUE_OLD, MSG_FILTERS,
    MSG_LAYOUT,
};
use super::superblock::{Space, Superblock};
use super::values::{check_bools, swap_in_place};
use super::{Data, DatasetInfo, Kind};
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::h5::AttrValue;
use crate::storage::{ByteRange, Storage};

/// Groups nest at most this deep on any path amber follows.
const MAX_DEPTH: usize = 1024;

pub struct H5File {
    space: Space,
    root: u64,
    label: String,
    headers: Mutex<HashMap<u64, Arc<ObjectHeader>>>,
    links: Mutex<HashMap<u64, Arc<Members>>>,
}

/// A group's links in link order, and an index by name so path walks in large groups stay
/// linear overall.
struct Members {
    list: Vec<Link>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for H5File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H5File({})", self.label)
    }
}

impl H5File {
    /// Map the file at `path` and index its root group.
    pub fn open(path: impl AsRef<Path>) -> Result<H5File> {
        let storage = Storage::map(path)?;
        Self::from_range(storage.full())
    }

    /// Read an HDF5 file held in `range` (a whole file, or a stored zip entry inside a mapped
    /// archive); addresses are relative to the superblock found inside the range.
    pub fn from_range(range: ByteRange) -> Result<H5File> {
        let label = range.storage().label().to_string();
        let sb = Superblock::find(&range).in_file(&label)?;
        let file = H5File {
            space: sb.space,
            root: sb.root,
            label,
            headers: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
        };
        let root = file.header(file.root).in_object("/").in_file(&file.label)?;
        if !links::is_group(&root) {
            return Err(Error::corrupt("the root object is not a group").in_object("/").in_file(&file.label));
        }
        Ok(file)
    }

    /// What is at `path`, or `None` when no link leads there.
    pub fn kind(&self, path: &str) -> Result<Option<Kind>> {
        match self.resolve(path) {
            Ok(addr) => self.located(self.kind_of(addr).map(Some), || norm(path)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Member names of the group at `path`, in the file's link order.
    pub fn members(&self, path: &str) -> Result<Vec<String>> {
        let addr = self.resolve(path)?;
        let links = self.located(self.group_links(addr), || norm(path))?;
        Ok(links.list.iter().map(|l| l.name.clone()).collect())
    }

    /// Attributes of the group or dataset at `path`.
    pub fn attrs(&self, path: &str) -> Result<Vec<(String, AttrValue)>> {
        let addr = self.resolve(path)?;
        let run = || attributes::attributes(&self.space, &*self.header(addr)?);
        self.located(run(), || norm(path))
    }

    /// Element type and shape of the dataset at `path`.
    pub fn dataset(&self, path: &str) -> Result<DatasetInfo> {
        let addr = self.resolve(path)?;
        let run = || {
            let (dt, ds) = self.dataset_type(&*self.header(addr)?)?;
            match dt {
                Datatype::Number { dtype, .. } => Ok(DatasetInfo { dtype, shape: ds.shape() }),
                other => Err(Error::unsupported(format!("dataset of {} (amber reads numeric datasets)", other.describe()))),
            }
        };
        self.located(run(), || norm(path))
    }

    /// The data of the dataset at `path`: a view of the file when stored contiguously in
    /// little-endian order, else a decoded little-endian buffer.
    pub fn read(&self, path: &str) -> Result<Data> {
        let addr = self.resolve(path)?;
        self.located(self.read_at(addr), || norm(path))
    }

    /// Every object below the root, depth first in link order, each listed once.
    pub fn visit(&self) -> Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([self.root]);
        let mut ancestors = vec![self.root];
        self.visit_group(self.root, "", &mut ancestors, &mut seen, &mut out)?;
        Ok(out)
    }

    fn visit_group(
        &self,
        addr: u64,
        prefix: &str,
        ancestors: &mut Vec<u64>,
        seen: &mut HashSet<u64>,
        out: &mut Vec<(String, Kind)>,
    ) -> Result<()> {
        if ancestors.len() > MAX_DEPTH {
            return Err(Error::refused(format!("groups nest deeper than {MAX_DEPTH} levels")).in_object(prefix).in_file(&self.label));
        }
        let links = self.located(self.group_links(addr), || slash(prefix))?;
        for link in links.list.iter() {
            let path = if prefix.is_empty() { link.name.clone() } else { format!("{prefix}/{}", link.name) };
            let target = self.located(self.follow(link), || slash(&path))?;
            if ancestors.contains(&target) {
                return Err(Error::corrupt("link cycle: this link leads back to one of its own parent groups")
                    .in_object(slash(&path))
                    .in_file(&self.label));
            }
            if !seen.insert(target) {
                continue; // another hard link to an object already listed
            }
            let kind = self.located(self.kind_of(target), || slash(&path))?;
            out.push((path.clone(), kind));
            if kind == Kind::Group {
                ancestors.push(target);
                self.visit_group(target, &path, ancestors, seen, out)?;
                ancestors.pop();
            }
        }
        Ok(())
    }

    fn follow(&self, link: &Link) -> Result<u64> {
        match &link.target {
            Target::Hard(addr) => Ok(*addr),
            Target::Soft(to) => Err(Error::unsupported(format!("soft link '{}' -> '{to}' (amber follows hard links only)", link.name))),
            Target::External => Err(Error::unsupported(format!("external link '{}' (amber never opens other files)", link.name))),
        }
    }

    /// Address of the object at `path`, refusing links that lead back to an ancestor.
    fn resolve(&self, path: &str) -> Result<u64> {
        let mut addr = self.root;
        let mut walked = vec![self.root];
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let parent_len = so_far.len();
            so_far.push('/');
            so_far.push_str(part);
            let links = self.located(self.group_links(addr), || {
                let parent = so_far.get(..parent_len).unwrap_or("");
                if parent.is_empty() { "/".to_string() } else { parent.to_string() }
            })?;
            let link = links
                .by_name
                .get(part)
                .and_then(|&i| links.list.get(i))
                .ok_or_else(|| Error::not_found(format!("no object named '{part}'")).in_object(norm(path)).in_file(&self.label))?;
            addr = self.located(self.follow(link), || so_far.clone())?;
            if walked.contains(&addr) {
                return Err(Error::corrupt("link cycle: this link leads back to one of its own parent groups")
                    .in_object(so_far)
                    .in_file(&self.label));
            }
            walked.push(addr);
        }
        Ok(addr)
    }

    /// Name the file and (built only on failure) the object in an error.
    fn located<T>(&self, r: Result<T>, object: impl FnOnce() -> String) -> Result<T> {
        r.map_err(|e| e.in_object(object()).in_file(&self.label))
    }

    fn header(&self, addr: u64) -> Result<Arc<ObjectHeader>> {
        if let Some(h) = self.headers.lock().ok().and_then(|m| m.get(&addr).cloned()) {
            return Ok(h);
        }
        let h = Arc::new(ObjectHeader::parse(&self.space, addr)?);
        if let Ok(mut m) = self.headers.lock() {
            m.insert(addr, h.clone());
        }
        Ok(h)
    }

    fn group_links(&self, addr: u64) -> Result<Arc<Members>> {
        if let Some(l) = self.links.lock().ok().and_then(|m| m.get(&addr).cloned()) {
            return Ok(l);
        }
        let h = self.header(addr)?;
        if !links::is_group(&h) {
            return Err(Error::invalid("not a group"));
        }
        let list = links::links(&self.space, &h)?;
        let mut by_name = HashMap::with_capacity(list.len());
        for (i, link) in list.iter().enumerate() {
            by_name.entry(link.name.clone()).or_insert(i);
        }
        let l = Arc::new(Members { list, by_name });
        if let Ok(mut m) = self.links.lock() {
            m.insert(addr, l.clone());
        }
        Ok(l)
    }

    fn kind_of(&self, addr: u64) -> Result<Kind> {
        let h = self.header(addr)?;
        if links::is_group(&h) {
            Ok(Kind::Group)
        } else if h.find(MSG_LAYOUT).is_some() {
            Ok(Kind::Dataset)
        } else if h.find(MSG_DATATYPE).is_some() {
            Err(Error::unsupported("committed (named) datatype object"))
        } else {
            Err(Error::unsupported("object that is neither a group nor a dataset"))
        }
    }

    fn dataset_type(&self, h: &ObjectHeader) -> Result<(Datatype, Dataspace)> {
        if h.find(MSG_LAYOUT).is_none() {
            return Err(Error::invalid("not a dataset"));
        }
        let dt_msg = h.find(MSG_DATATYPE).ok_or_else(|| Error::corrupt("dataset without a datatype message"))?;
        if dt_msg.flags & FLAG_SHARED != 0 {
            return Err(Error::unsupported("dataset with a committed (shared) datatype"));
        }
        let ds_msg = h.find(MSG_DATASPACE).ok_or_else(|| Error::corrupt("dataset without a dataspace message"))?;
        let dt = Datatype::parse(&mut self.space.cursor(&dt_msg.body))?;
        let ds = Dataspace::parse(&mut self.space.cursor(&ds_msg.body))?;
        Ok((dt, ds))
    }

    fn read_at(&self, addr: u64) -> Result<Data> {
        let h = self.header(addr)?;
        let (dt, ds) = self.dataset_type(&h)?;
        let (dtype, big_endian) = match dt {
            Datatype::Number { dtype, big_endian } => (dtype, big_endian),
            other => return Err(Error::unsupported(format!("dataset of {} (amber reads numeric datasets)", other.describe()))),
        };
        if h.find(MSG_EXTERNAL_FILES).is_some() {
            return Err(Error::unsupported("dataset stored in external files (amber never opens other files)"));
        }
        let layout_msg = h.find(MSG_LAYOUT).ok_or_else(|| Error::corrupt("dataset without a layout message"))?;
        let layout = Layout::parse(&mut self.space.cursor(&layout_msg.body))?;
        let pipeline: Vec<Filter> = match h.find(MSG_FILTERS) {
            Some(m) => filters::parse_pipeline(&mut self.space.cursor(&m.body))?,
            None => Vec::new(),
        };
        let fill = match h.find(MSG_FILL_VALUE).or_else(|| h.find(MSG_FILL_VALUE_OLD)) {
            Some(m) if m.mtype == MSG_FILL_VALUE => layout::fill_value(&mut self.space.cursor(&m.body))?,
            // The old fill value message: a 4-byte size, then the value.
            Some(m) => {
                let mut c = self.space.cursor(&m.body);
                let size = c.u32()? as u64;
                Some(c.bytes(size)?.to_vec()).filter(|v| !v.is_empty())
            }
            None => None,
        };
        let shape = match &ds {
            Dataspace::Null => return Ok(Data::Owned(Vec::new())),
            other => other.shape(),
        };
        let unlimited = match h.find(MSG_DATASPACE) {
            Some(m) => Dataspace::unlimited_dim(&mut self.space.cursor(&m.body))?,
            None => None,
        };
        let raw = layout::read(&self.space, &layout, &pipeline, &shape, dtype.size() as u64, fill.as_deref(), unlimited)?;
        let data = match raw {
            Raw::Range(r) if !big_endian => Data::View(r),
            Raw::Range(r) => Data::Owned(r.bytes().to_vec()),
            Raw::Owned(v) => Data::Owned(v),
        };
        let data = match data {
            Data::Owned(mut v) if big_endian => {
                swap_in_place(&mut v, dtype.size());
                Data::Owned(v)
            }
            d => d,
        };
        if dtype == crate::dtype::DType::Bool {
            check_bools(data.bytes())?;
        }
        Ok(data)
    }
}

fn norm(path: &str) -> String {
    let trimmed: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", trimmed.join("/"))
}

fn slash(path: &str) -> String {
    format!("/{path}")
}
