//! Dataspace messages: scalar, simple (an n-dimensional shape) and null (no data at all).

use super::cursor::Cursor;
use crate::error::{Error, Result};

/// HDF5 allows 32 dimensions.
const MAX_RANK: u8 = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dataspace {
    Scalar,
    Simple(Vec<u64>),
    Null,
}

impl Dataspace {
    pub fn parse(c: &mut Cursor<'_>) -> Result<Dataspace> {
        let at = c.abs();
        let version = c.u8()?;
        let rank = c.u8()?;
        let flags = c.u8()?;
        if rank > MAX_RANK {
            return Err(Error::corrupt(format!("dataspace of rank {rank} (HDF5 allows {MAX_RANK})")).at(at));
        }
        let kind = match version {
            1 => {
                c.skip(5)?; // reserved
                if rank == 0 { 0 } else { 1 }
            }
            2 => c.u8()?,
            v => return Err(Error::unsupported(format!("dataspace message version {v}")).at(at)),
        };
        if flags & 0x02 != 0 && version == 1 {
            return Err(Error::unsupported("dataspace with a dimension permutation").at(at));
        }
        let mut dims = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            dims.push(c.length()?);
        }
        // Maximum dimensions (flag bit 0) only matter to writers that extend the dataset.
        Ok(match kind {
            0 => Dataspace::Scalar,
            1 => Dataspace::Simple(dims),
            2 => Dataspace::Null,
            k => return Err(Error::corrupt(format!("unknown dataspace type {k}")).at(at)),
        })
    }

    /// The first dimension whose maximum size is unlimited, if any.
    pub fn unlimited_dim(c: &mut Cursor<'_>) -> Result<Option<usize>> {
        let version = c.u8()?;
        let rank = c.u8()?.min(MAX_RANK) as u64;
        let flags = c.u8()?;
        c.skip(if version == 1 { 5 } else { 1 })?;
        if flags & 0x01 == 0 {
            return Ok(None);
        }
        let width = c.sizes().lengths;
        c.skip(rank * width as u64)?;
        let all_ones = if width >= 8 { u64::MAX } else { (1u64 << (8 * width as u32)) - 1 };
        for d in 0..rank as usize {
            if c.length()? == all_ones {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// The shape as amber reports it: `[]` for a scalar, `[0]` for a null dataspace.
    pub fn shape(&self) -> Vec<u64> {
        match self {
            Dataspace::Scalar => Vec::new(),
            Dataspace::Simple(d) => d.clone(),
            Dataspace::Null => vec![0],
        }
    }

    /// Number of elements, refusing overflow.
    pub fn count(&self) -> Result<u64> {
        match self {
            Dataspace::Scalar => Ok(1),
            Dataspace::Null => Ok(0),
            Dataspace::Simple(d) => d.iter().try_fold(1u64, |n, &x| {
                n.checked_mul(x).ok_or_else(|| Error::corrupt(format!("shape {d:?} has more elements than 2^64")))
            }),
        }
    }
}
