//! Fixed, documented train/validation splits.
//!
//! The paper holds out 5,000 of CIFAR's 50,000 training images for validation. We use the split the
//! reference predictions in `data/predictions` were made with: `numpy.random.RandomState(1)
//! .permutation(50000)`, first 5,000 indices for validation, with images ordered by class then
//! file name. [`numpy_permutation`] reproduces numpy's legacy generator bit for bit (MT19937
//! seeded by `init_genrand`, Fisher–Yates from the end with masked rejection sampling), so the
//! index list is the same without shipping it.

use rand_mt::Mt;

/// `numpy.random.RandomState(seed).permutation(n)`.
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = Mt::new(seed);
    let mut x: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let max = i as u64;
        let mut mask = max;
        for s in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> s;
        }
        let j = loop {
            let v = if max <= u32::MAX as u64 {
                (mt.next_u32() as u64) & mask
            } else {
                ((mt.next_u32() as u64) << 32 | mt.next_u32() as u64) & mask
            };
            if v <= max {
                break v as usize;
            }
        };
        x.swap(i, j);
    }
    x
}

/// Train and validation indices: a seeded permutation, the first `n_val` for validation (sorted
/// back into dataset order on both sides, so batches of a fixed order stay reproducible).
pub fn holdout(n: usize, n_val: usize, seed: u32) -> (Vec<usize>, Vec<usize>) {
    let perm = numpy_permutation(n, seed);
    let (mut val, mut train) = (perm[..n_val.min(n)].to_vec(), perm[n_val.min(n)..].to_vec());
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// Train and validation indices with `per_class` images of every class held out: within each
/// class (in dataset order), the first `per_class` of numpy's `RandomState(seed).permutation`
/// of that class's images. Tiny-ImageNet holds out 50 per class this way.
pub fn holdout_per_class(labels: &[i64], per_class: usize, seed: u32) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for rows in by_class.values() {
        let perm = numpy_permutation(rows.len(), seed);
        for (rank, &p) in perm.iter().enumerate() {
            if rank < per_class {
                val.push(rows[p])
            } else {
                train.push(rows[p])
            }
        }
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_randomstate_1() {
        // numpy 2.4.6: np.random.RandomState(1).permutation(50000)
        let p = numpy_permutation(50_000, 1);
        assert_eq!(p[..8], [26247, 35067, 34590, 16668, 12196, 2600, 9047, 2206]);
        assert_eq!(p[4995..5005], [49563, 16500, 49787, 19719, 47381, 45573, 39021, 36044, 45885, 19497]);
        assert_eq!(p[49_997..], [5192, 12172, 33003]);
    }

    #[test]
    fn per_class_holdout() {
        let labels: Vec<i64> = (0..30).map(|i| i % 3).collect();
        let (train, val) = holdout_per_class(&labels, 4, 1);
        assert_eq!((train.len(), val.len()), (18, 12));
        for c in 0..3 {
            assert_eq!(val.iter().filter(|&&i| labels[i] == c).count(), 4);
        }
    }

    #[test]
    fn holdout_partitions() {
        let (train, val) = holdout(50_000, 5_000, 1);
        assert_eq!((train.len(), val.len()), (45_000, 5_000));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert!(all.iter().enumerate().all(|(i, &v)| i == v));
        assert!(val.contains(&26247) && !train.contains(&26247));
    }
}
