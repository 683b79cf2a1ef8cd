//! Reading and writing numpy `.npy` files: how predictions move between frameworks
//! (`np.save(logits)` in PyTorch, `calib metrics --logits` here) and how our trainers save them.
//!
//! The header is parsed by `npyz`; the data is checked against it (a truncated or over-long file
//! is an error naming the file and both sizes) and decoded in bulk. Writes go to a temporary file
//! that is renamed into place, so a failure never leaves a half-written result.

use crate::error::{Error, Result};
use npyz::{Endianness, TypeChar, WriterBuilder};
use std::io::Cursor;
use std::path::Path;

/// A numeric array read from a `.npy` file, converted to `f64` or `i64` as asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

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
}

struct Raw {
    elem: Elem,
    big_endian: bool,
    shape: Vec<usize>,
    bytes: Vec<u8>,
    offset: usize,
    descr: String,
}

fn read_raw(path: &Path) -> Result<Raw> {
    let bytes = std::fs::read(path).map_err(|e| problem(path, format!("cannot read: {e}")))?;
    if bytes.is_empty() {
        return Err(problem(path, "the file is empty (0 bytes), not a .npy array"));
    }
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(problem(path, "not a .npy file (missing the \\x93NUMPY magic)"));
    }
    let mut cursor = Cursor::new(&bytes[..]);
    let header =
        npyz::NpyHeader::from_reader(&mut cursor).map_err(|e| problem(path, format!("bad .npy header: {e}")))?;
    let offset = cursor.position() as usize;
    let npy = npyz::NpyFile::with_header(header, &bytes[offset..]);
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
        _ => {
            return Err(problem(path, format!("unsupported dtype {descr} (expected float32, float64, int32 or int64)")))
        }
    };
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let width = if matches!(elem, Elem::F32 | Elem::I32) { 4 } else { 8 };
    let expected = shape.iter().product::<usize>() * width;
    let found = bytes.len() - offset;
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
    Ok(Raw { elem, big_endian: ts.endianness() == Endianness::Big, shape, bytes, offset, descr })
}

macro_rules! decode {
    ($raw:expr, $t:ty, $out:ty) => {{
        let be = $raw.big_endian;
        $raw.bytes[$raw.offset..]
            .chunks_exact(std::mem::size_of::<$t>())
            .map(|c| {
                let a = c.try_into().expect("exact chunk");
                (if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as $out
            })
            .collect::<Vec<$out>>()
    }};
}

/// A float matrix in its stored precision.
#[derive(Debug, Clone, PartialEq)]
pub enum FloatArray {
    F32(Array<f32>),
    F64(Array<f64>),
}

impl FloatArray {
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => &a.shape,
            Self::F64(a) => &a.shape,
        }
    }

    /// The values in the computation's precision: exact when widening float32 to f64, rounded
    /// to nearest when narrowing float64 to f32.
    pub fn to_real<F: crate::Real>(&self) -> Vec<F> {
        match self {
            Self::F32(a) => a.data.iter().map(|&v| F::of(v as f64)).collect(),
            Self::F64(a) => a.data.iter().map(|&v| F::of(v)).collect(),
        }
    }
}

/// Reads a float32/float64 array of the given rank (`what` names it in errors).
pub fn read_floats(path: &Path, rank: usize, what: &str) -> Result<FloatArray> {
    let raw = read_raw(path)?;
    if raw.shape.len() != rank {
        return Err(problem(path, format!("{what} must be a {rank}-D array, found shape {:?}", raw.shape)));
    }
    let shape = raw.shape.clone();
    Ok(match raw.elem {
        Elem::F32 => FloatArray::F32(Array { shape, data: decode!(raw, f32, f32) }),
        Elem::F64 => FloatArray::F64(Array { shape, data: decode!(raw, f64, f64) }),
        _ => return Err(problem(path, format!("{what} must be float32 or float64, found {}", raw.descr))),
    })
}

/// Reads a 1-D int32/int64 array (class labels).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let raw = read_raw(path)?;
    if raw.shape.len() != 1 {
        return Err(problem(path, format!("labels must be a 1-D array, found shape {:?}", raw.shape)));
    }
    Ok(match raw.elem {
        Elem::I32 => decode!(raw, i32, i64),
        Elem::I64 => decode!(raw, i64, i64),
        _ => return Err(problem(path, format!("labels must be int32 or int64, found {}", raw.descr))),
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
        assert_eq!(a.to_real::<f64>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
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
