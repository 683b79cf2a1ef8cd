//! Storage of a score matrix: float32 or float64, owned or memory-mapped straight from a `.npy`
//! file. The kernels convert each row to the computation's precision as they read it, so a
//! 10⁶ × 100 float32 file evaluated in f64 is neither copied nor widened as a whole.

use std::ops::Range;
use std::sync::Arc;

/// Values in memory, or a read-only map of a file's data section.
#[derive(Debug, Clone)]
pub enum Buffer<T> {
    Owned(Vec<T>),
    Mapped(Mapped<T>),
}

/// `len` values starting `offset` bytes into a memory map (the offset is aligned for `T`); made
/// by [`crate::npy`].
#[derive(Debug, Clone)]
pub struct Mapped<T> {
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
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => bytemuck::cast_slice(&m.map[m.offset..m.offset + m.len * std::mem::size_of::<T>()]),
        }
    }
}

/// A flat array of scores in its stored precision.
#[derive(Debug, Clone)]
pub enum Values {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
}

impl Values {
    pub fn slice(&self) -> Slice<'_> {
        match self {
            Self::F32(b) => Slice::F32(b.as_slice()),
            Self::F64(b) => Slice::F64(b.as_slice()),
        }
    }

    pub fn len(&self) -> usize {
        self.slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// The same values, owned.
    pub fn to_owned(&self) -> Values {
        match self {
            Self::F32(s) => Values::F32(Buffer::Owned(s.to_vec())),
            Self::F64(s) => Values::F64(Buffer::Owned(s.to_vec())),
        }
    }
}
