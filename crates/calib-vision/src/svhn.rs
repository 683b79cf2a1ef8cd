//! SVHN's cropped-digits files (`test_32x32.mat`, `train_32x32.mat`): MATLAB level-5 MAT-files
//! with `X`, uint8 `[32, 32, 3, N]` in MATLAB's column-major order, and `y`, `[N, 1]` digit
//! labels in 1–10 where 10 stands for the digit 0. Uncompressed and zlib-compressed (`miCOMPRESSED`)
//! elements are read; numeric `y` may be stored as any integer or floating type.

use crate::{input_error, Images, Result};
use std::io::Read;
use std::path::Path;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// A numeric matrix: its name, MATLAB dimensions and values (as f64; uint8 data kept as bytes).
struct Matrix {
    name: String,
    dims: Vec<usize>,
    bytes: Option<Vec<u8>>,
    values: Vec<f64>,
}

/// Splits the next data element off `buf`: (type, payload, rest). Handles the small format.
fn element(buf: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    if buf.len() < 8 {
        return None;
    }
    let word = u32::from_le_bytes(buf[0..4].try_into().ok()?);
    if word >> 16 != 0 {
        let (ty, len) = (word & 0xffff, (word >> 16) as usize);
        return (len <= 4).then(|| (ty, &buf[4..4 + len], &buf[8..]));
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    let end = 8 + len;
    // Elements are padded to 8 bytes, except compressed ones.
    let padded = if word == MI_COMPRESSED { end } else { end.div_ceil(8) * 8 };
    (buf.len() >= end).then(|| (word, &buf[8..end], &buf[padded.min(buf.len())..]))
}

fn numbers(ty: u32, data: &[u8]) -> Option<Vec<f64>> {
    macro_rules! conv {
        ($t:ty) => {
            data.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect()
        };
    }
    Some(match ty {
        MI_INT8 => data.iter().map(|&b| b as i8 as f64).collect(),
        MI_UINT8 => data.iter().map(|&b| b as f64).collect(),
        MI_INT16 => conv!(i16),
        MI_UINT16 => conv!(u16),
        MI_INT32 => conv!(i32),
        MI_UINT32 => conv!(u32),
        MI_SINGLE => conv!(f32),
        MI_DOUBLE => conv!(f64),
        _ => return None,
    })
}

fn matrix(payload: &[u8]) -> Option<Matrix> {
    let (_, _flags, rest) = element(payload)?;
    let (dty, dims, rest) = element(rest)?;
    let dims: Vec<usize> = numbers(dty, dims)?.into_iter().map(|d| d as usize).collect();
    let (_, name, rest) = element(rest)?;
    let (ty, data, _) = element(rest)?;
    Some(Matrix {
        name: String::from_utf8_lossy(name).into_owned(),
        dims,
        bytes: (ty == MI_UINT8).then(|| data.to_vec()),
        values: if ty == MI_UINT8 { Vec::new() } else { numbers(ty, data)? },
    })
}

/// Every top-level matrix of a level-5 MAT-file.
fn matrices(path: &Path, bytes: &[u8]) -> Result<Vec<Matrix>> {
    if bytes.len() < 128 || !bytes.starts_with(b"MATLAB 5.0 MAT-file") {
        return Err(input_error(path, "not a MATLAB level-5 MAT-file (v7.3/HDF5 files are not supported)"));
    }
    if &bytes[126..128] != b"IM" {
        return Err(input_error(path, "big-endian MAT-files are not supported"));
    }
    let bad = || input_error(path, "truncated or malformed MAT-file element");
    let mut rest = &bytes[128..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (ty, payload, next) = element(rest).ok_or_else(bad)?;
        match ty {
            MI_MATRIX => out.push(matrix(payload).ok_or_else(bad)?),
            MI_COMPRESSED => {
                let mut inner = Vec::new();
                flate2::read::ZlibDecoder::new(payload)
                    .read_to_end(&mut inner)
                    .map_err(|e| input_error(path, format!("corrupt compressed element: {e}")))?;
                let (ity, ipayload, _) = element(&inner).ok_or_else(bad)?;
                if ity == MI_MATRIX {
                    out.push(matrix(ipayload).ok_or_else(bad)?);
                }
            }
            _ => {}
        }
        rest = next;
    }
    Ok(out)
}

/// Reads an SVHN `*_32x32.mat` file; labels 0–9 (the file's 10 becomes 0).
pub fn read_mat(path: &Path) -> Result<Images> {
    let bytes = std::fs::read(path).map_err(|e| input_error(path, format!("cannot read: {e}")))?;
    let mats = matrices(path, &bytes)?;
    let find = |n: &str| mats.iter().find(|m| m.name == n).ok_or_else(|| input_error(path, format!("no variable {n}")));
    let (x, y) = (find("X")?, find("y")?);
    let pixels = x.bytes.as_ref().ok_or_else(|| input_error(path, "X is not uint8"))?;
    if x.dims.len() != 4 || x.dims[2] != 3 {
        return Err(input_error(path, format!("X has dimensions {:?}, expected [height, width, 3, N]", x.dims)));
    }
    let (h, w, n) = (x.dims[0], x.dims[1], x.dims[3]);
    let labels: Vec<f64> = match &y.bytes {
        Some(b) => b.iter().map(|&v| v as f64).collect(),
        None => y.values.clone(),
    };
    if labels.len() != n || Some(pixels.len()) != h.checked_mul(w).and_then(|x| x.checked_mul(3 * n)) {
        return Err(input_error(
            path,
            format!("{} labels and {} bytes for {n} images of {h}×{w}", labels.len(), pixels.len()),
        ));
    }
    let mut hwc = vec![0u8; pixels.len()];
    for i in 0..n {
        for c in 0..3 {
            for col in 0..w {
                for row in 0..h {
                    hwc[((i * h + row) * w + col) * 3 + c] = pixels[row + h * (col + w * (c + 3 * i))];
                }
            }
        }
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| match l as i64 {
            10 => Ok(0),
            d @ 1..=9 if l.fract() == 0.0 => Ok(d),
            _ => Err(input_error(path, format!("label {l} of image {i} is not a digit 1–10"))),
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(Images { height: h, width: w, pixels: hwc, labels, classes: (0..10).map(|d| d.to_string()).collect() })
}
