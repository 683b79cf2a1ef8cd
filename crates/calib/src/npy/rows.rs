//! A `.npy` file written a chunk of rows at a time: predictions of a large split (WMT14's
//! token-level test predictions are about 10⁵ × 32k floats) stream to disk without ever being
//! held or concatenated in memory. The header is written for the final row count when the file
//! is finished; until then the data goes to a temporary file, so a failure leaves nothing behind.

use crate::error::{Error, Result};
use std::io::{Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Element types a [`RowWriter`] writes, with their numpy type string (native byte order).
pub trait Element: bytemuck::Pod {
    const KIND: &'static str;
}

impl Element for f32 {
    const KIND: &'static str = "f4";
}
impl Element for f64 {
    const KIND: &'static str = "f8";
}
impl Element for i64 {
    const KIND: &'static str = "i8";
}
impl Element for i32 {
    const KIND: &'static str = "i4";
}

/// Header bytes reserved at the start: room for any row count (format 1.0 headers are padded to a
/// multiple of 64 bytes).
const HEADER: usize = 128;

/// Writes an array of shape `[rows, trailing…]` row chunk by row chunk.
pub struct RowWriter<T: Element> {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    out: std::io::BufWriter<std::fs::File>,
    trailing: Vec<usize>,
    row_len: usize,
    rows: usize,
    _elem: PhantomData<T>,
}

fn fail(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.to_path_buf(), problem: format!("cannot write: {e}") }
}

/// The header for `shape`, or None when it does not fit the reserved bytes.
fn header<T: Element>(shape: &[usize]) -> Option<Vec<u8>> {
    let order = if cfg!(target_endian = "little") { '<' } else { '>' };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let dict = format!("{{'descr': '{order}{}', 'fortran_order': False, 'shape': {shape}, }}", T::KIND);
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&((HEADER - 10) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    if bytes.len() >= HEADER {
        return None;
    }
    bytes.resize(HEADER - 1, b' ');
    bytes.push(b'\n');
    Some(bytes)
}

impl<T: Element> RowWriter<T> {
    /// A writer for `path` whose rows have shape `trailing` (empty for a 1-D array).
    pub fn new(path: &Path, trailing: &[usize]) -> Result<Self> {
        // The largest row count must fit the header too.
        let mut widest = vec![usize::MAX];
        widest.extend_from_slice(trailing);
        if header::<T>(&widest).is_none() {
            return Err(Error::Shape(format!("{}: row shape {trailing:?} has too many dimensions", path.display())));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = crate::atomic::temp_in(dir).map_err(|e| fail(path, e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.reopen().map_err(|e| fail(path, e))?);
        out.write_all(&[0u8; HEADER]).map_err(|e| fail(path, e))?;
        let row_len = trailing.iter().product();
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out,
            trailing: trailing.to_vec(),
            row_len,
            rows: 0,
            _elem: PhantomData,
        })
    }

    /// Appends whole rows (`values.len()` a multiple of the row length).
    pub fn push(&mut self, values: &[T]) -> Result<()> {
        if self.row_len == 0 || values.len() % self.row_len != 0 {
            return Err(Error::Shape(format!(
                "{}: {} values are not whole rows of shape {:?}",
                self.path.display(),
                values.len(),
                self.trailing
            )));
        }
        self.out.write_all(bytemuck::cast_slice(values)).map_err(|e| fail(&self.path, e))?;
        self.rows += values.len() / self.row_len;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the header for the rows written, and renames the file into place.
    pub fn finish(self) -> Result<usize> {
        let Self { path, tmp, mut out, mut trailing, rows, .. } = self;
        trailing.insert(0, rows);
        let head =
            header::<T>(&trailing).ok_or_else(|| fail(&path, format!("shape {trailing:?} too long for the header")))?;
        out.flush().map_err(|e| fail(&path, e))?;
        let mut file = out.into_inner().map_err(|e| fail(&path, e.error()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| fail(&path, e))?;
        file.write_all(&head).map_err(|e| fail(&path, e))?;
        file.sync_all().map_err(|e| fail(&path, e))?;
        tmp.persist(&path).map_err(|e| fail(&path, e.error))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        crate::atomic::sync_dir(dir);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_rows_read_back_as_one_array() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logits.npy");
        let mut w = RowWriter::<f32>::new(&p, &[3]).unwrap();
        w.push(&[1.0, 2.0, 3.0]).unwrap();
        w.push(&[4.0, 5.0, 6.0, 7.0, 8.0, 9.5]).unwrap();
        assert!(w.push(&[1.0]).is_err());
        assert!(!p.exists(), "nothing in place before finish");
        assert_eq!(w.finish().unwrap(), 3);
        let a = crate::npy::read_floats(&p, 2, "logits").unwrap();
        assert_eq!(a.shape(), &[3, 3]);
        assert_eq!(a.into_real::<f64>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.5]);
        let l = dir.path().join("labels.npy");
        let mut w = RowWriter::<i64>::new(&l, &[]).unwrap();
        w.push(&[3, 1]).unwrap();
        w.push(&[2]).unwrap();
        w.finish().unwrap();
        assert_eq!(crate::npy::read_labels(&l).unwrap(), vec![3, 1, 2]);
        // A writer dropped without finishing leaves no file.
        let q = dir.path().join("dropped.npy");
        drop(RowWriter::<f32>::new(&q, &[2]).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
