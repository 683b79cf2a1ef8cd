//! The focal-loss γ rule (Propositions 1–2 of the paper): g(p, γ), γ*(p0) through Lambert W₋₁,
//! sample-dependent γ policies (FLSD) and epoch schedules (FLSc).

use crate::error::{Error, Result};

/// g(p, γ) = (1−p)^γ − γ p (1−p)^(γ−1) log p: the ratio of the focal-loss gradient norm to the
/// cross-entropy one for the last linear layer, at true-class probability p.
pub fn g(p: f64, gamma: f64) -> f64 {
    (1.0 - p).powf(gamma) - gamma * p * (1.0 - p).powf(gamma - 1.0) * p.ln()
}

/// γ*(p0): the γ with g(p0, γ) = 1, so that g(p, γ*) ≤ 1 for every p ≥ p0.
///
/// With a = 1 − p0 and b = p0 log p0, the condition a^(γ−1)(a − γ b) = 1 becomes, for
/// u = (γ − a/b) log a, u e^u = −(log a / b)·a^(1 − a/b), whose non-trivial solution lies on the
/// W₋₁ branch: γ* = a/b + W₋₁(−(log a / b) a^(1−a/b)) / log a.
pub fn gamma_star(p0: f64) -> Result<f64> {
    if !(p0 > 0.0 && p0 < 1.0) {
        return Err(Error::Parameter(format!("p0 = {p0} must lie strictly between 0 and 1")));
    }
    let a = 1.0 - p0;
    let b = p0 * p0.ln();
    let x = -(a.ln() / b) * a.powf(1.0 - a / b);
    let w = lambert_w::lambert_wm1(x);
    if !w.is_finite() {
        return Err(Error::Parameter(format!("no finite γ* for p0 = {p0} (W₋₁ argument {x})")));
    }
    let gamma = a / b + w / a.ln();
    if gamma <= 1e-9 {
        // Only the trivial root γ = 0 remains: every γ ≥ 0 keeps g(p, γ) ≤ 1 above this p0.
        return Err(Error::Parameter(format!(
            "p0 = {p0} is too large: g(p, γ) ≤ 1 for all p ≥ p0 whatever γ, so γ* is unbounded"
        )));
    }
    Ok(gamma)
}

/// A sample-dependent γ: the first `(threshold, γ)` pair with p < threshold gives γ, and p at or
/// above every threshold gets `otherwise`. FLSD-53 is `[(0.2, 5)]` otherwise 3; FLSD-532 is
/// `[(0.2, 5), (0.5, 3)]` otherwise 2, exactly the official `FocalLossAdaptive` rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Policy {
    thresholds: Vec<(f64, f64)>,
    otherwise: f64,
}

impl Policy {
    pub fn new(thresholds: Vec<(f64, f64)>, otherwise: f64) -> Result<Self> {
        for w in thresholds.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(Error::Parameter("FLSD thresholds must increase".into()));
            }
        }
        for &(t, gm) in &thresholds {
            if !(t > 0.0 && t <= 1.0 && gm >= 0.0 && gm.is_finite()) {
                return Err(Error::Parameter(format!("bad FLSD pair {t}={gm}: need 0 < threshold ≤ 1 and γ ≥ 0")));
            }
        }
        if !(otherwise >= 0.0 && otherwise.is_finite()) {
            return Err(Error::Parameter(format!("γ = {otherwise} must be ≥ 0")));
        }
        Ok(Self { thresholds, otherwise })
    }

    /// The `(threshold, γ)` pairs, increasing.
    pub fn thresholds(&self) -> &[(f64, f64)] {
        &self.thresholds
    }

    /// The γ above every threshold.
    pub fn otherwise(&self) -> f64 {
        self.otherwise
    }

    /// The γ for true-class probability `p` (strict `<` against each threshold).
    pub fn gamma(&self, p: f64) -> f64 {
        self.thresholds.iter().find(|&&(t, _)| p < t).map_or(self.otherwise, |&(_, gm)| gm)
    }

    /// A policy built from the γ rule: for increasing thresholds t₁ < … < tₙ, γ = round(γ*(t₁))
    /// below t₁, round(γ*(tᵢ₊₁)) on [tᵢ, tᵢ₊₁), and round(γ*(tₙ)) above. `[0.2, 0.25]` gives
    /// FLSD-53 (γ*(0.2) = 4.85 → 5, γ*(0.25) = 3.07 → 3).
    pub fn from_lambert(thresholds: &[f64]) -> Result<Self> {
        if thresholds.is_empty() {
            return Err(Error::Parameter("at least one threshold is needed".into()));
        }
        let gammas = thresholds.iter().map(|&t| gamma_star(t).map(f64::round)).collect::<Result<Vec<_>>>()?;
        let pairs = thresholds.iter().copied().zip(gammas.iter().copied()).collect();
        Self::new(pairs, *gammas.last().expect("non-empty"))
    }
}

/// γ by epoch (FLSc): each `(first_epoch, γ)` holds until the next one starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Schedule {
    steps: Vec<(usize, f64)>,
}

impl Schedule {
    pub fn new(steps: Vec<(usize, f64)>) -> Result<Self> {
        if steps.first().map(|s| s.0) != Some(0) {
            return Err(Error::Parameter("an FLSc schedule must start at epoch 0".into()));
        }
        if steps.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::Parameter("FLSc epochs must increase".into()));
        }
        if steps.iter().any(|s| !(s.1 >= 0.0 && s.1.is_finite())) {
            return Err(Error::Parameter("FLSc γ values must be ≥ 0".into()));
        }
        Ok(Self { steps })
    }

    /// The `(first epoch, γ)` steps, starting at epoch 0.
    pub fn steps(&self) -> &[(usize, f64)] {
        &self.steps
    }

    pub fn gamma(&self, epoch: usize) -> f64 {
        self.steps.iter().rev().find(|s| s.0 <= epoch).expect("starts at epoch 0").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_star_reference_values() {
        assert!((gamma_star(0.25).unwrap() - 3.0702271).abs() < 1e-6);
        assert!((gamma_star(0.2).unwrap() - 4.8505544).abs() < 1e-6);
        for p0 in [0.05, 0.1, 0.15, 0.3] {
            let gs = gamma_star(p0).unwrap();
            assert!((g(p0, gs) - 1.0).abs() < 1e-9, "g({p0}, γ*) = {}", g(p0, gs));
            // g ≤ 1 above p0, > 1 just below.
            assert!((1..50).all(|i| g(p0 + (1.0 - p0) * i as f64 / 50.0, gs) <= 1.0 + 1e-12));
            assert!(g(p0 * 0.9, gs) > 1.0, "p0 {p0} γ* {gs} g {}", g(p0 * 0.9, gs));
        }
        assert!(gamma_star(0.5).is_err() && gamma_star(0.6).is_err());
        assert!(gamma_star(0.45).unwrap() > 0.0);
        assert!(gamma_star(0.0).is_err() && gamma_star(1.0).is_err() && gamma_star(f64::NAN).is_err());
    }

    #[test]
    fn lambert_policy_reproduces_flsd53() {
        let p = Policy::from_lambert(&[0.2, 0.25]).unwrap();
        for (pt, gm) in [(0.1, 5.0), (0.199, 5.0), (0.2, 3.0), (0.22, 3.0), (0.5, 3.0), (0.99, 3.0)] {
            assert_eq!(p.gamma(pt), gm, "p = {pt}");
        }
    }

    #[test]
    fn schedule_steps() {
        let s = Schedule::new(vec![(0, 5.0), (100, 3.0), (250, 1.0)]).unwrap();
        assert_eq!([0, 99, 100, 249, 250, 349].map(|e| s.gamma(e)), [5.0, 5.0, 3.0, 3.0, 1.0, 1.0]);
        assert!(Schedule::new(vec![(1, 5.0)]).is_err());
    }
}
