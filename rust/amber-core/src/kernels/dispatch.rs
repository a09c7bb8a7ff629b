//! Which instruction set the kernels use: detected once at run time, overridable by the
//! `AMBER_KERNEL_ISA` environment variable (read once) or by `set_isa` (so tests can exercise
//! every path the machine has).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// An instruction-set path of the matmul kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD (the compiler may still vectorise it for the baseline).
    Generic,
    /// x86-64 AVX2 with FMA3.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
    /// aarch64 Advanced SIMD (NEON), with its fused multiply-add.
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    pub fn from_name(name: &str) -> Result<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "generic" => Ok(Isa::Generic),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            other => Err(Error::invalid(format!(
                "unknown kernel ISA '{other}' (expected one of: avx512, avx2, neon, generic)"
            ))),
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn code(self) -> u8 {
        match self {
            Isa::Generic => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
            Isa::Neon => 4,
        }
    }

    fn from_code(code: u8) -> Option<Isa> {
        match code {
            1 => Some(Isa::Generic),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Avx512),
            4 => Some(Isa::Neon),
            _ => None,
        }
    }
}

/// Every path this CPU can run, best first.
pub fn supported_isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Generic].into_iter().filter(|isa| isa.is_supported()).collect()
}

/// The best path of this CPU.
pub fn detected_isa() -> Isa {
    supported_isas().first().copied().unwrap_or(Isa::Generic)
}

/// 0 = no override from `set_isa`.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The environment's choice, read once. An unknown or unsupported name is ignored (with the
/// detected path used instead) rather than failing every later matmul.
fn env_isa() -> Option<Isa> {
    static ENV: OnceLock<Option<Isa>> = OnceLock::new();
    *ENV.get_or_init(|| {
        let value = std::env::var("AMBER_KERNEL_ISA").ok()?;
        Isa::from_name(&value).ok().filter(|isa| isa.is_supported())
    })
}

/// The path the kernels use now.
pub fn active_isa() -> Isa {
    Isa::from_code(FORCED.load(Ordering::Relaxed)).or_else(env_isa).unwrap_or_else(detected_isa)
}

/// Force a path (`None` returns to the environment's choice or detection). Refuses a path the
/// CPU cannot run, since running it would fault.
pub fn set_isa(isa: Option<Isa>) -> Result<()> {
    match isa {
        None => FORCED.store(0, Ordering::Relaxed),
        Some(isa) if isa.is_supported() => FORCED.store(isa.code(), Ordering::Relaxed),
        Some(isa) => {
            return Err(Error::invalid(format!(
                "kernel ISA '{}' is not supported by this CPU (supported: {})",
                isa.name(),
                supported_isas().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
    Ok(())
}

/// Worker threads a large product may use: `AMBER_NUM_THREADS` (read once) or the cores.
pub fn max_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        std::env::var("AMBER_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(cores)
    })
}
