//! Reading and writing numpy `.npy` files: how predictions move between frameworks
//! (`np.save(logits)` in PyTorch, `calib metrics --logits` here) and how our trainers save them.
//!
//! The header is parsed by `npyz`; the data is checked against it (a truncated or over-long file
//! is an error naming the file and both sizes) and read straight into typed buffers. Writes go to a temporary file
//! that is renamed into place, so a failure never leaves a half-written result.

use crate::error::{Error, Result};
use crate::values::{Buffer, Mapped, Values};
use npyz::{Endianness, TypeChar, WriterBuilder};
use rayon::prelude::*;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

mod rows;
pub use rows::{Element, RowWriter};

fn problem(path: &Path, text: impl Into<String>) -> Error {
    Error::File { path: path.to_path_buf(), problem: text.into() }
}

/// Element types we read, with their byte order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    F32,
    F64,
    I32,
    I64,
    U8,
}

/// A parsed header: what the data is and where it starts.
struct Header {
    elem: Elem,
    big_endian: bool,
    shape: Vec<usize>,
    offset: u64,
    descr: String,
}

/// Parses and checks the header against the file size (truncated and over-long files are errors).
fn read_header(path: &Path, file: &mut File) -> Result<Header> {
    let len = file.metadata().map_err(|e| problem(path, format!("cannot read: {e}")))?.len();
    if len == 0 {
        return Err(problem(path, "the file is empty (0 bytes), not a .npy array"));
    }
    let mut prefix = [0u8; 12];
    let got = file.read(&mut prefix).map_err(|e| problem(path, format!("cannot read: {e}")))?;
    if got < 10 || !prefix.starts_with(b"\x93NUMPY") {
        return Err(problem(path, "not a .npy file (missing the \\x93NUMPY magic)"));
    }
    let header_end = match prefix[6] {
        1 => 10 + u16::from_le_bytes([prefix[8], prefix[9]]) as u64,
        _ => 12 + u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64,
    };
    if header_end > len {
        return Err(problem(path, format!("truncated: the header needs {header_end} bytes but the file holds {len}")));
    }
    let mut head = vec![0u8; header_end as usize];
    file.read_exact_at(&mut head, 0).map_err(|e| problem(path, format!("cannot read: {e}")))?;
    let header = npyz::NpyHeader::from_reader(&head[..]).map_err(|e| problem(path, format!("bad .npy header: {e}")))?;
    let npy = npyz::NpyFile::with_header(header, std::io::empty());
    if npy.order() == npyz::Order::Fortran {
        return Err(problem(path, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray"));
    }
    let dtype = npy.dtype();
    let descr = dtype.descr();
    let npyz::DType::Plain(ts) = &dtype else {
        return Err(problem(path, format!("structured dtype {descr} is not a numeric array")));
    };
    let elem = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => Elem::F32,
        (TypeChar::Float, 8) => Elem::F64,
        (TypeChar::Int, 4) => Elem::I32,
        (TypeChar::Int, 8) => Elem::I64,
        (TypeChar::Uint, 1) => Elem::U8,
        _ => {
            return Err(problem(
                path,
                format!("unsupported dtype {descr} (expected float32, float64, int32, int64 or uint8)"),
            ))
        }
    };
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let width = match elem {
        Elem::U8 => 1,
        Elem::F32 | Elem::I32 => 4,
        Elem::F64 | Elem::I64 => 8,
    };
    let expected = shape
        .iter()
        .try_fold(width as u64, |acc: u64, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| problem(path, format!("shape {shape:?} is too large")))?;
    let found = len - header_end;
    if found < expected {
        return Err(problem(
            path,
            format!(
                "truncated: the header promises shape {shape:?} ({expected} data bytes) but the file holds {found}"
            ),
        ));
    }
    if found > expected {
        return Err(problem(path, format!("{} unexpected bytes after the data of shape {shape:?}", found - expected)));
    }
    Ok(Header { elem, big_endian: ts.endianness() == Endianness::Big, shape, offset: header_end, descr })
}

/// Reads the data straight into a typed buffer, in parallel 8 MiB pieces (the page cache copy is
/// the only pass over the bytes), then fixes the byte order if the file is big-endian.
fn read_data<T: bytemuck::Pod + Send>(path: &Path, file: &File, h: &Header, swap: fn(T) -> T) -> Result<Vec<T>> {
    let n = h.shape.iter().product::<usize>();
    let mut data = vec![T::zeroed(); n];
    const PIECE: usize = 8 << 20;
    bytemuck::cast_slice_mut::<T, u8>(&mut data).par_chunks_mut(PIECE).enumerate().try_for_each(|(i, buf)| {
        file.read_exact_at(buf, h.offset + (i * PIECE) as u64).map_err(|e| problem(path, format!("cannot read: {e}")))
    })?;
    if h.big_endian != cfg!(target_endian = "big") {
        data.par_iter_mut().for_each(|v| *v = swap(*v));
    }
    Ok(data)
}

fn open(path: &Path) -> Result<(File, Header)> {
    let mut file = File::open(path).map_err(|e| problem(path, format!("cannot open: {e}")))?;
    let header = read_header(path, &mut file)?;
    Ok((file, header))
}

/// A float array in its stored precision (memory-mapped when the file allows it).
#[derive(Debug, Clone)]
pub struct FloatArray {
    pub shape: Vec<usize>,
    pub values: Values,
}

impl FloatArray {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values in the computation's precision: widening is exact, narrowing rounds to nearest.
    pub fn into_real<F: crate::Real>(self) -> Vec<F> {
        let s = self.values.slice();
        let mut out = vec![F::zero(); s.len()];
        F::load(s, &mut out);
        out
    }
}

/// Maps the data section when it can be used in place (native byte order, aligned offset):
/// no copy, no zeroed allocation, pages shared with the page cache.
fn map<T: bytemuck::Pod>(file: &File, h: &Header) -> Option<Buffer<T>> {
    let size = std::mem::size_of::<T>() as u64;
    if h.big_endian != cfg!(target_endian = "big") || h.offset % size != 0 {
        return None;
    }
    // SAFETY: the map is read-only; as with numpy's mmap_mode, the file must not be truncated
    // while the array is in use.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file) }.ok()?;
    Some(Buffer::Mapped(Mapped::new(map, h.offset as usize, h.shape.iter().product())))
}

/// Reads a float32/float64 array of the given rank (`what` names it in errors).
pub fn read_floats(path: &Path, rank: usize, what: &str) -> Result<FloatArray> {
    let (file, h) = open(path)?;
    if h.shape.len() != rank {
        return Err(problem(path, format!("{what} must be a {rank}-D array, found shape {:?}", h.shape)));
    }
    let values = match h.elem {
        Elem::F32 => Values::f32(match map(&file, &h) {
            Some(b) => b,
            None => Buffer::Owned(read_data(path, &file, &h, |v: f32| f32::from_bits(v.to_bits().swap_bytes()))?),
        }),
        Elem::F64 => Values::f64(match map(&file, &h) {
            Some(b) => b,
            None => Buffer::Owned(read_data(path, &file, &h, |v: f64| f64::from_bits(v.to_bits().swap_bytes()))?),
        }),
        _ => return Err(problem(path, format!("{what} must be float32 or float64, found {}", h.descr))),
    };
    Ok(FloatArray { shape: h.shape, values })
}

/// Reads a uint8 array of any rank (images, e.g. CIFAR-10-C's `[50000, 32, 32, 3]`); returns its
/// shape and bytes.
pub fn read_u8(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let (file, h) = open(path)?;
    if h.elem != Elem::U8 {
        return Err(problem(path, format!("expected a uint8 array, found {}", h.descr)));
    }
    let data = read_data(path, &file, &h, |v: u8| v)?;
    Ok((h.shape, data))
}

/// Reads a 1-D int32/int64/uint8 array (class labels).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let (file, h) = open(path)?;
    if h.shape.len() != 1 {
        return Err(problem(path, format!("labels must be a 1-D array, found shape {:?}", h.shape)));
    }
    Ok(match h.elem {
        Elem::I32 => read_data(path, &file, &h, i32::swap_bytes)?.into_iter().map(i64::from).collect(),
        Elem::I64 => read_data(path, &file, &h, i64::swap_bytes)?,
        Elem::U8 => read_data(path, &file, &h, |v: u8| v)?.into_iter().map(i64::from).collect(),
        _ => return Err(problem(path, format!("labels must be int32, int64 or uint8, found {}", h.descr))),
    })
}

/// Writes `data` with `shape` atomically (see [`crate::atomic`]).
pub fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::Shape(format!("{} values do not fill shape {shape:?}", data.len())));
    }
    let mut bytes = Vec::with_capacity(128 + std::mem::size_of_val(data));
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let encode = |e: std::io::Error| problem(path, format!("cannot encode: {e}"));
    let mut w =
        npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd().map_err(encode)?;
    w.extend(data.iter().copied()).map_err(encode)?;
    w.finish().map_err(encode)?;
    crate::atomic::write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write(&p, &[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let a = read_floats(&p, 2, "logits").unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a.into_real::<f64>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = read_floats(&p, 2, "logits").unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("truncated"), "{e}");
        let l = dir.path().join("y.npy");
        write(&l, &[3], &[0i64, 2, 1]).unwrap();
        assert_eq!(read_labels(&l).unwrap(), vec![0, 2, 1]);
        assert!(read_floats(&l, 1, "logits").unwrap_err().to_string().contains("float32 or float64"));
    }
}
