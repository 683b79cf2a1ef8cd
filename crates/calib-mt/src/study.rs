//! The temperature study of the paper's appendix K: for every temperature T, test BLEU with beam
//! search at T (T divides the logits at every step) and validation token-level ECE and NLL at T
//! (teacher-forced target tokens, the core's metrics). The T with the lowest validation ECE is
//! the one a user would pick without looking at the test set.

use crate::decode::{translate, Search, Specials};
use crate::metrics::{corpus_bleu, BleuOptions};
use crate::tokenize::Vocab;
use crate::transformer::Transformer;
use calib_train::probe::RowStats;
use calib_train::task::Task;

/// What can stop the study.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Train(#[from] calib_train::Error),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenize::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::Error),
    #[error(transparent)]
    Decode(#[from] crate::decode::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The study at one temperature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Point {
    pub t: f64,
    pub bleu: f64,
    pub val_ece: f64,
    pub val_nll: f64,
}

/// Token-level ECE (`bins` bins) and NLL of the task's `val` split at every temperature, from
/// one teacher-forced pass streamed through the trainer's row statistics (never the logits).
pub fn validation_curves<T: Task>(task: &T, temps: &[f64], bins: usize) -> Result<Vec<(f64, f64)>> {
    RowStats::of_split_at(task, "val", temps)?
        .iter()
        .map(|rows| {
            let p = rows.probe_with_bins(bins)?;
            Ok((p.ece, p.nll))
        })
        .collect()
}

/// What the test side of the study needs: the model, its vocabulary, the encoded sources and
/// their reference streams, and the search (its temperature is replaced by each T).
pub struct TestSet<'a> {
    pub model: &'a Transformer,
    pub vocab: &'a Vocab,
    pub sources: &'a [Vec<u32>],
    pub refs: &'a [Vec<String>],
    pub search: Search,
    pub max_tokens: usize,
    pub device: tch::Device,
}

/// The study at every temperature of `temps`; `each` sees every point as it is computed. Also
/// returns the BLEU signature.
pub fn temperature<T: Task>(
    task: &T,
    test: &TestSet,
    temps: &[f64],
    bins: usize,
    mut each: impl FnMut(&Point),
) -> Result<(Vec<Point>, String)> {
    let curves = validation_curves(task, temps, bins)?;
    let specials = Specials::from(test.vocab);
    let (mut points, mut signature) = (Vec::with_capacity(temps.len()), String::new());
    for (&t, &(val_ece, val_nll)) in temps.iter().zip(&curves) {
        let search = Search { temperature: t, nbest: 1, ..test.search.clone() };
        let hyps = translate(test.model, test.sources, specials, test.max_tokens, &search, test.device)?;
        let texts = hyps
            .iter()
            .map(|h| test.vocab.decode(&h[0].tokens.iter().map(|&x| x as u32).collect::<Vec<_>>()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let bleu = corpus_bleu(&texts, test.refs, &BleuOptions::default())?;
        signature = bleu.signature;
        let point = Point { t, bleu: bleu.score, val_ece, val_nll };
        each(&point);
        points.push(point);
    }
    Ok((points, signature))
}

/// The point with the lowest validation ECE (the first of equals).
pub fn chosen(points: &[Point]) -> Option<&Point> {
    points.iter().reduce(|best, p| if p.val_ece < best.val_ece { p } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calib::metrics::{evaluate, Options};
    use calib::{ScoreKind, Scores};
    use calib_train::task::{Batches, Data, Shard};
    use tch::nn::VarStore;
    use tch::Tensor;

    /// Fixed logits in two batches of 50 rows.
    struct Rows {
        logits: Vec<f64>,
        targets: Vec<i64>,
        k: usize,
    }

    impl Data for Rows {
        type Batch = Vec<Tensor>;
        fn train_batches(&self, _: usize, _: u64, _: Shard) -> Batches<'_, Vec<Tensor>> {
            Box::new(std::iter::empty())
        }
        fn train_batches_per_epoch(&self, _: Shard) -> usize {
            0
        }
        fn eval_batches(&self, _: &str, shard: Shard) -> calib_train::Result<Batches<'_, Vec<Tensor>>> {
            Ok(Box::new(shard.every(0..2).map(|i| {
                let rows = i * 50..(i + 1) * 50;
                let l = &self.logits[rows.start * self.k..rows.end * self.k];
                vec![Tensor::from_slice(l).view([50, self.k as i64]), Tensor::from_slice(&self.targets[rows])]
            })))
        }
        fn has_split(&self, _: &str) -> bool {
            true
        }
    }

    struct Fixed {
        rows: Rows,
        vs: VarStore,
    }

    impl Task for Fixed {
        type Batch = Vec<Tensor>;
        type Data = Rows;
        fn data(&self) -> &Rows {
            &self.rows
        }
        fn forward(&self, batch: &Vec<Tensor>, _: bool) -> calib_train::Result<(Tensor, Tensor)> {
            Ok((batch[0].shallow_clone(), batch[1].shallow_clone()))
        }
        fn var_store(&self) -> &VarStore {
            &self.vs
        }
    }

    /// The curves equal the core's ECE and NLL of the logits divided by each T.
    #[test]
    fn curves_equal_the_core_metrics_at_each_temperature() {
        let (n, k) = (100usize, 6usize);
        let values: Vec<f64> = (0..n * k).map(|i| ((i * 7919) % 101) as f64 / 9.0 - 5.0).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 5) % k as i64).collect();
        let task = Fixed {
            rows: Rows { logits: values.clone(), targets: labels.clone(), k },
            vs: VarStore::new(tch::Device::Cpu),
        };
        let temps = [0.5, 1.0, 2.5];
        let curves = validation_curves(&task, &temps, 15).unwrap();
        let scores = Scores::new(values, k, &labels, ScoreKind::Logits).unwrap();
        for (&t, &(ece, nll)) in temps.iter().zip(&curves) {
            let r = evaluate(&scores, &Options::default().with_temperature(t)).unwrap();
            assert!((ece - r.ece).abs() < 1e-12, "T = {t}: {ece} vs {}", r.ece);
            assert!((nll - r.nll).abs() < 1e-12, "T = {t}");
        }
        let points: Vec<Point> =
            curves.iter().zip(temps).map(|(&(val_ece, val_nll), t)| Point { t, bleu: 0.0, val_ece, val_nll }).collect();
        let best = chosen(&points).unwrap();
        assert!(points.iter().all(|p| p.val_ece >= best.val_ece));
    }
}
