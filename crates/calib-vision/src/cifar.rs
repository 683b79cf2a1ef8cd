//! CIFAR-10 and CIFAR-100 in their binary distribution format: records of a label byte (CIFAR-100:
//! coarse then fine label) and 3 × 1024 bytes of R, G and B planes, 32 × 32, row-major.

use crate::{input_error, Images, Result};
use std::path::Path;

pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const PLANE: usize = 32 * 32;

/// Which labels a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// CIFAR-10: one label byte.
    Cifar10,
    /// CIFAR-100: coarse and fine label bytes; the fine label is used.
    Cifar100Fine,
    /// CIFAR-100 with the 20 coarse labels.
    Cifar100Coarse,
}

impl Layout {
    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            _ => 2,
        }
    }
    fn classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100Fine => 100,
            Self::Cifar100Coarse => 20,
        }
    }
}

/// Reads binary batch files (e.g. `data_batch_1.bin` … `data_batch_5.bin`, or `train.bin`) in order.
pub fn read_binary(files: &[&Path], layout: Layout) -> Result<Images> {
    let record = layout.label_bytes() + 3 * PLANE;
    let mut out = Images {
        height: 32,
        width: 32,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: match layout {
            Layout::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            _ => (0..layout.classes()).map(|c| c.to_string()).collect(),
        },
    };
    for &path in files {
        let bytes = std::fs::read(path).map_err(|e| input_error(path, format!("cannot read: {e}")))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(input_error(
                path,
                format!(
                    "{} bytes is not a whole number of {record}-byte CIFAR records (truncated or wrong format?)",
                    bytes.len()
                ),
            ));
        }
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = match layout {
                Layout::Cifar100Coarse => rec[0],
                Layout::Cifar10 => rec[0],
                Layout::Cifar100Fine => rec[1],
            };
            if label as usize >= layout.classes() {
                return Err(input_error(path, format!("record {i}: label {label} is outside 0..{}", layout.classes())));
            }
            out.labels.push(label as i64);
            let planes = &rec[layout.label_bytes()..];
            for p in 0..PLANE {
                out.pixels.extend_from_slice(&[planes[p], planes[PLANE + p], planes[2 * PLANE + p]]);
            }
        }
    }
    Ok(out)
}

/// Encodes 32 × 32 images as CIFAR-10 binary records (to build caches or test fixtures).
pub fn to_binary(images: &Images) -> Result<Vec<u8>> {
    if (images.height, images.width) != (32, 32) || images.labels.iter().any(|&l| !(0..256).contains(&l)) {
        return Err(input_error("images", "CIFAR records hold 32×32 images with labels below 256"));
    }
    let mut out = Vec::with_capacity(images.len() * (1 + 3 * PLANE));
    for i in 0..images.len() {
        out.push(images.labels[i] as u8);
        let img = images.image(i);
        for c in 0..3 {
            out.extend((0..PLANE).map(|p| img[3 * p + c]));
        }
    }
    Ok(out)
}
