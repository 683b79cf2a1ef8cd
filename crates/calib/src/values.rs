//! Storage of a score matrix: float32 or float64, owned or memory-mapped straight from a `.npy`
//! file. The kernels convert each row to the computation's precision as they read it, so a
//! 10⁶ × 100 float32 file evaluated in f64 is neither copied nor widened as a whole.

use std::ops::Range;
use std::sync::Arc;

/// Values in memory, or a read-only map of a file's data section.
#[derive(Debug, Clone)]
pub(crate) enum Buffer<T> {
    Owned(Vec<T>),
    Mapped(Mapped<T>),
}

/// `len` values starting `offset` bytes into a memory map (the offset is aligned for `T`); made
/// by [`crate::npy`].
#[derive(Debug, Clone)]
pub(crate) struct Mapped<T> {
    map: Arc<memmap2::Mmap>,
    offset: usize,
    len: usize,
    kind: std::marker::PhantomData<T>,
}

impl<T> Mapped<T> {
    pub(crate) fn new(map: memmap2::Mmap, offset: usize, len: usize) -> Self {
        Self { map: Arc::new(map), offset, len, kind: std::marker::PhantomData }
    }
}

impl<T: bytemuck::Pod> Buffer<T> {
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => bytemuck::cast_slice(&m.map[m.offset..m.offset + m.len * std::mem::size_of::<T>()]),
        }
    }
}

/// A flat array of scores in its stored precision (float32 or float64, owned or memory-mapped),
/// as [`crate::npy::read_floats`] returns it and [`crate::Scores::from_values`] takes it. Opaque:
/// its storage is the crate's business.
#[derive(Debug, Clone)]
pub struct Values(pub(crate) Storage);

/// The storage behind [`Values`].
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
}

impl Values {
    pub(crate) fn f32(b: Buffer<f32>) -> Self {
        Self(Storage::F32(b))
    }

    pub(crate) fn f64(b: Buffer<f64>) -> Self {
        Self(Storage::F64(b))
    }

    pub(crate) fn slice(&self) -> Slice<'_> {
        match &self.0 {
            Storage::F32(b) => Slice::F32(b.as_slice()),
            Storage::F64(b) => Slice::F64(b.as_slice()),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the values are stored as float32 (else float64).
    pub fn is_f32(&self) -> bool {
        matches!(self.0, Storage::F32(_))
    }
}

/// A borrowed run of values in their stored precision.
#[derive(Debug, Clone, Copy)]
pub enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl<'a> Slice<'a> {
    pub fn len(&self) -> usize {
        match self {
            Self::F32(s) => s.len(),
            Self::F64(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn sub(&self, r: Range<usize>) -> Slice<'a> {
        match self {
            Self::F32(s) => Self::F32(&s[r]),
            Self::F64(s) => Self::F64(&s[r]),
        }
    }

    /// Value `i` as f64 (exact).
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Self::F32(s) => s[i] as f64,
            Self::F64(s) => s[i],
        }
    }
}
