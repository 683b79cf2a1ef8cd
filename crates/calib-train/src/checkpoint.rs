//! Checkpoints: weights and optimiser state in one safetensors file plus a small JSON state
//! (epoch, step, best value), each written to a temporary file and renamed into place, so a run
//! killed at any moment leaves the previous checkpoint intact.

use crate::error::{file, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// Writes named tensors to `path` atomically.
pub fn save_tensors(path: &Path, named: &[(String, Tensor)]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = calib::atomic::temp_in(dir).map_err(|e| file(dir, format!("cannot create a temporary file: {e}")))?;
    // Contiguous: a channels-last weight is stored in the usual NCHW order (safetensors holds no strides).
    let cpu: Vec<(String, Tensor)> =
        named.iter().map(|(k, t)| (k.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, tmp.path()).map_err(|e| file(path, format!("cannot write: {e}")))?;
    tmp.as_file().sync_all().map_err(|e| file(path, format!("cannot sync: {e}")))?;
    crate::fault::point("checkpoint");
    tmp.persist(path).map_err(|e| file(path, format!("cannot rename into place: {}", e.error)))?;
    calib::atomic::sync_dir(dir);
    calib::atomic::remove_stale(dir);
    Ok(())
}

/// Reads what [`save_tensors`] wrote.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let named = Tensor::read_safetensors(path).map_err(|e| file(path, format!("not a readable checkpoint: {e}")))?;
    Ok(named.into_iter().collect())
}

/// Writes a serialisable state as pretty JSON, atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| file(path, format!("cannot encode: {e}")))?;
    Ok(calib::atomic::write(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_partial_file_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.safetensors");
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        save_tensors(&p, &[("w".into(), t.shallow_clone())]).unwrap();
        let back = load_tensors(&p).unwrap();
        assert_eq!(Vec::<f32>::try_from(&back["w"]).unwrap(), vec![1.0, 2.0, 3.0]);
        // Writing into a folder that does not exist fails and leaves nothing behind.
        let bad = dir.path().join("missing/last.safetensors");
        assert!(save_tensors(&bad, &[("w".into(), t)]).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A truncated file is an error naming it.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load_tensors(&p).unwrap_err().to_string().contains("last.safetensors"));
    }
}
