//! Device selection, the one place that knows about GPU features.

use candle_core::Device;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown device {0:?} (cpu or cuda:N)")]
    Unknown(String),
    #[error("device {0} needs valkit built with `--features cuda`")]
    NoCuda(String),
    // The cause is in the message, not a `source`: `{:#}` would print it twice, and the
    // eval-losses worker reports only `to_string()`.
    #[error("cannot open {device}: {cause}")]
    Open { device: String, cause: candle_core::Error },
}

pub fn select(name: &str) -> Result<Device, Error> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let ordinal: usize = cuda.strip_prefix("cuda:").unwrap_or("0").parse().map_err(|_| Error::Unknown(name.into()))?;
            open_cuda(name, ordinal)
        }
        other => Err(Error::Unknown(other.into())),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(name: &str, ordinal: usize) -> Result<Device, Error> {
    Device::new_cuda(ordinal).map_err(|e| Error::Open { device: name.into(), cause: without_backtrace(e) })
}

/// candle appends a backtrace to its errors when RUST_BACKTRACE is set; the error is one line
/// without it (for instance `DriverError(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is
/// detected")`).
#[cfg(feature = "cuda")]
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        e => e,
    }
}

/// Bytes free on a GPU for a model's weights and working set; None on the CPU, whose free memory
/// the caller reads from the host.
#[cfg(feature = "cuda")]
pub fn free_memory(device: &Device) -> Option<u64> {
    match device {
        Device::Cuda(cuda) => cuda.cuda_stream().context().mem_get_info().ok().map(|(free, _total)| free as u64),
        _ => None,
    }
}

#[cfg(not(feature = "cuda"))]
pub fn free_memory(_device: &Device) -> Option<u64> {
    None
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(name: &str, _ordinal: usize) -> Result<Device, Error> {
    Err(Error::NoCuda(name.into()))
}
