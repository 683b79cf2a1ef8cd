//! Isotonic regression (Zadrozny & Elkan 2002) as netcal 1.4.0's `IsotonicRegression` runs it:
//! scikit-learn's `IsotonicRegression(y_min=0, y_max=1, increasing=True, out_of_bounds='clip')`.
//!
//! scikit-learn's steps, which we follow: sort by (p, label); merge each run of p values lying
//! within 1e-15 (`np.finfo(float64).resolution`) of the run's first value into one point at that
//! value with the mean label and the run's size as weight; pool adjacent violators (weighted);
//! drop interior points whose value equals both neighbours'; map by linear interpolation between
//! the points (scipy's `interp1d`), after clipping p to the fitted range.

use super::check_params;
use super::one_vs_all::BinaryMap;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The piecewise-linear isotonic map: its knots, with `x` increasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Isotonic {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// scikit-learn's tie resolution for float64 inputs.
const RESOLUTION: f64 = 1e-15;

impl BinaryMap for Isotonic {
    type Params = ();

    fn fit(p: &[f64], positive: &[bool], _: &()) -> Result<Self> {
        if p.is_empty() {
            return Err(Error::Empty("isotonic regression has no rows to fit".into()));
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(positive[a].cmp(&positive[b])));
        // Unique points (sklearn's `_make_unique`): value, mean label, weight.
        let (mut xs, mut ys, mut ws) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cur_x, mut cur_y, mut cur_w) = (p[order[0]], 0.0, 0.0);
        for &i in &order {
            let y = f64::from(u8::from(positive[i]));
            if p[i] - cur_x >= RESOLUTION {
                xs.push(cur_x);
                ys.push(cur_y / cur_w);
                ws.push(cur_w);
                (cur_x, cur_y, cur_w) = (p[i], y, 1.0);
            } else {
                cur_y += y;
                cur_w += 1.0;
            }
        }
        xs.push(cur_x);
        ys.push(cur_y / cur_w);
        ws.push(cur_w);
        let fitted = pava(&ys, &ws);
        // Trim interior knots equal to both neighbours (they do not change the interpolation).
        let n = xs.len();
        let keep = |i: usize| i == 0 || i + 1 == n || fitted[i] != fitted[i - 1] || fitted[i] != fitted[i + 1];
        let (x, y) = (0..n).filter(|&i| keep(i)).map(|i| (xs[i], fitted[i].clamp(0.0, 1.0))).unzip();
        Ok(Self { x, y })
    }

    fn map(&self, p: f64) -> f64 {
        let n = self.x.len();
        if n == 1 {
            return self.y[0];
        }
        let t = p.clamp(self.x[0], self.x[n - 1]);
        // interp1d: hi = searchsorted(x, t) kept in 1..n, lo = hi − 1.
        let hi = self.x.partition_point(|&v| v < t).clamp(1, n - 1);
        let lo = hi - 1;
        let slope = (self.y[hi] - self.y[lo]) / (self.x[hi] - self.x[lo]);
        slope * (t - self.x[lo]) + self.y[lo]
    }

    fn validate(&self) -> Result<()> {
        if self.x.is_empty() {
            return Err(Error::Shape("an isotonic map has no knots".into()));
        }
        check_params("isotonic knots x", &self.x, self.x.len())?;
        check_params("isotonic knots y", &self.y, self.x.len())?;
        if self.x.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Parameter("isotonic knots x must increase".into()));
        }
        Ok(())
    }
}

/// Weighted pool-adjacent-violators: the non-decreasing sequence closest to `y` in weighted
/// least squares, each pooled block taking its weighted mean.
pub(crate) fn pava(y: &[f64], w: &[f64]) -> Vec<f64> {
    // Blocks as (weighted sum, weight, length).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(y.len());
    for (&v, &wt) in y.iter().zip(w) {
        blocks.push((v * wt, wt, 1));
        while blocks.len() > 1 {
            let (s1, w1, _) = blocks[blocks.len() - 1];
            let (s0, w0, _) = blocks[blocks.len() - 2];
            if s0 / w0 < s1 / w1 {
                break;
            }
            let last = blocks.pop().expect("two blocks");
            let prev = blocks.last_mut().expect("two blocks");
            *prev = (prev.0 + last.0, prev.1 + last.1, prev.2 + last.2);
        }
    }
    blocks.iter().flat_map(|&(s, wt, len)| std::iter::repeat_n(s / wt, len)).collect()
}
