//! Batching that several domains share: token-count batches (fairseq's `--max-tokens`) for
//! sequences of varying length, and padding of integer rows into one `[B, width]` tensor.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("sentence pair {index} (line {line}) has {tokens} tokens, more than the {max} a batch may hold")]
    TooLong { index: usize, line: usize, tokens: usize, max: usize },
    #[error("{0} source lengths but {1} target lengths")]
    Mismatch(usize, usize),
}

/// Batches of pair indices. Pairs are ordered by (source, target) length with ties in a seeded
/// random order, cut greedily so that `pairs × longest side` stays within `max_tokens`, and the
/// batches are then shuffled by `(seed, epoch)`: deterministic, so a resumed run sees the same
/// batches. Sentences of similar length go together, so padding is small and every batch holds
/// about the same number of tokens.
pub fn token_batches(
    src: &[usize],
    tgt: &[usize],
    max_tokens: usize,
    seed: u64,
    epoch: usize,
) -> Result<Vec<Vec<usize>>, Error> {
    if src.len() != tgt.len() {
        return Err(Error::Mismatch(src.len(), tgt.len()));
    }
    let width = |i: usize| src[i].max(tgt[i]);
    if let Some(index) = (0..src.len()).find(|&i| width(i) > max_tokens) {
        return Err(Error::TooLong { index, line: index + 1, tokens: width(index), max: max_tokens });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..src.len()).collect();
    order.shuffle(&mut rng);
    order.sort_by_key(|&i| (src[i], tgt[i]));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let w = width(i).max(1);
        if !current.is_empty() && (current.len() + 1) * longest.max(w) > max_tokens {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(w);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches.shuffle(&mut rng);
    Ok(batches)
}

/// Rows of integers as one `[rows, width]` int64 tensor, each row cut or filled with `pad` to
/// `width` (the longest row when `width` is None).
pub fn pad<R: AsRef<[i64]>>(rows: &[R], width: Option<usize>, pad: i64) -> Tensor {
    let width = width.unwrap_or_else(|| rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0));
    let mut flat = vec![pad; rows.len() * width];
    for (out, row) in flat.chunks_mut(width.max(1)).zip(rows) {
        let row = row.as_ref();
        let n = row.len().min(width);
        out[..n].copy_from_slice(&row[..n]);
    }
    Tensor::from_slice(&flat).view([rows.len() as i64, width as i64])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_coverage_determinism() {
        let src: Vec<usize> = (0..1000).map(|i| 3 + (i * 37) % 40).collect();
        let tgt: Vec<usize> = (0..1000).map(|i| 2 + (i * 11) % 45).collect();
        let b = token_batches(&src, &tgt, 300, 1, 0).unwrap();
        for batch in &b {
            let longest = batch.iter().map(|&i| src[i].max(tgt[i])).max().unwrap();
            assert!(batch.len() * longest <= 300);
        }
        let mut all: Vec<usize> = b.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(b, token_batches(&src, &tgt, 300, 1, 0).unwrap());
        assert_ne!(b, token_batches(&src, &tgt, 300, 1, 1).unwrap());
        // Pair 4 (line 5): source 3 + 148 % 40 = 31, target 2 + 44 % 45 = 46 tokens.
        assert_eq!(token_batches(&src, &tgt, 40, 1, 0), Err(Error::TooLong { index: 4, line: 5, tokens: 46, max: 40 }));
        assert_eq!(token_batches(&src, &tgt[1..], 300, 1, 0), Err(Error::Mismatch(1000, 999)));
    }

    #[test]
    fn padding_fills_and_cuts() {
        let rows = [vec![1i64, 2, 3], vec![4], vec![]];
        let t = pad(&rows, None, 0);
        assert_eq!(t.size(), vec![3, 3]);
        assert_eq!(Vec::<i64>::try_from(t.flatten(0, -1)).unwrap(), vec![1, 2, 3, 4, 0, 0, 0, 0, 0]);
        let cut = pad(&rows, Some(2), -1);
        assert_eq!(Vec::<i64>::try_from(cut.flatten(0, -1)).unwrap(), vec![1, 2, 4, -1, -1, -1]);
    }
}
