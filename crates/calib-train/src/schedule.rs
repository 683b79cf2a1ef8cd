//! Learning-rate schedules: the paper's steps at given epochs, one-cycle, and inverse square root
//! with warm-up (for translation). Pure functions of (epoch, step), so a resumed run gets the
//! same rate as an uninterrupted one.

use serde::{Deserialize, Serialize};

/// A schedule, as written in recipes (`kind = "steps"`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// `base × factor^k`, k = number of milestones ≤ epoch (0-based), or ≤ epoch + 1 with
    /// `timing = "official"`. The paper's CIFAR setting is base 0.1, milestones [150, 250],
    /// factor 0.1.
    Steps {
        base: f64,
        milestones: Vec<usize>,
        factor: f64,
        #[serde(default)]
        timing: Timing,
    },
    /// PyTorch's `OneCycleLR` (cosine annealing, two phases): from peak/div_factor up to `peak`
    /// over the first `pct_start` of `total_steps`, then down to peak/(div_factor·final_div_factor).
    OneCycle { peak: f64, total_steps: usize, pct_start: f64, div_factor: f64, final_div_factor: f64 },
    /// fairseq's `inverse_sqrt`: linear warm-up to `peak` over `warmup` steps, then
    /// peak·sqrt(warmup / step).
    InverseSqrt { peak: f64, warmup: usize },
}

/// When a step schedule's milestones take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// A milestone m lowers the rate from 0-based epoch m on (`MultiStepLR` stepped after each
    /// epoch, as PyTorch documents it).
    #[default]
    Standard,
    /// One epoch earlier, as the paper's official loop has it: it calls `scheduler.step()` at the
    /// start of every epoch, before any optimiser step, so epoch e already runs at epoch e + 1's
    /// rate and milestones [150, 250] drop the rate at 0-based epochs 149 and 249.
    Official,
}

fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl Schedule {
    /// The rate for optimiser step `step` (0-based, counted over the whole run) in `epoch`.
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        match self {
            Self::Steps { base, milestones, factor, timing } => {
                let e = match timing {
                    Timing::Standard => epoch,
                    Timing::Official => epoch + 1,
                };
                base * factor.powi(milestones.iter().filter(|&&m| m <= e).count() as i32)
            }
            Self::OneCycle { peak, total_steps, pct_start, div_factor, final_div_factor } => {
                let initial = peak / div_factor;
                let min = initial / final_div_factor;
                let end_up = pct_start * *total_steps as f64 - 1.0;
                let end_down = *total_steps as f64 - 1.0;
                let s = step as f64;
                if s <= end_up {
                    annealing_cos(initial, *peak, s / end_up)
                } else {
                    annealing_cos(*peak, min, ((s - end_up) / (end_down - end_up)).min(1.0))
                }
            }
            Self::InverseSqrt { peak, warmup } => {
                let s = (step + 1) as f64;
                let w = (*warmup).max(1) as f64;
                if s < w {
                    peak * s / w
                } else {
                    peak * (w / s).sqrt()
                }
            }
        }
    }

    /// Checks the parameters (positive rates, increasing milestones, …).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Steps { base, milestones, factor, .. } => {
                if !(*base > 0.0 && *factor > 0.0) {
                    return Err(format!("steps schedule: base {base} and factor {factor} must be positive"));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("steps schedule: milestones {milestones:?} must increase"));
                }
            }
            Self::OneCycle { peak, total_steps, pct_start, div_factor, final_div_factor } => {
                if !(*peak > 0.0 && *div_factor > 0.0 && *final_div_factor > 0.0) || *total_steps < 2 {
                    return Err("one-cycle schedule: peak, div factors must be positive and total_steps ≥ 2".into());
                }
                if !(*pct_start > 0.0 && *pct_start < 1.0) || pct_start * *total_steps as f64 <= 1.0 {
                    return Err(format!(
                        "one-cycle schedule: pct_start {pct_start} must leave at least one warm-up step"
                    ));
                }
            }
            Self::InverseSqrt { peak, .. } => {
                if *peak <= 0.0 {
                    return Err(format!("inverse-sqrt schedule: peak {peak} must be positive"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_steps() {
        let s = Schedule::Steps { base: 0.1, milestones: vec![150, 250], factor: 0.1, timing: Timing::Standard };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(s.lr(0, 0), 0.1) && close(s.lr(149, 0), 0.1));
        assert!(close(s.lr(150, 0), 0.01) && close(s.lr(249, 0), 0.01));
        assert!(close(s.lr(250, 0), 0.001) && close(s.lr(349, 0), 0.001));
    }

    /// The official loop's rates, printed by PyTorch 2.11 for
    /// `MultiStepLR(SGD(lr=0.1), [150, 250], 0.1)` stepped before each epoch:
    /// 0-based epochs 0…148 at 0.1, 149…248 at 0.01, 249… at 0.001.
    #[test]
    fn official_timing_drops_one_epoch_early() {
        let s = Schedule::Steps { base: 0.1, milestones: vec![150, 250], factor: 0.1, timing: Timing::Official };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(s.lr(0, 0), 0.1) && close(s.lr(148, 0), 0.1));
        assert!(close(s.lr(149, 0), 0.01) && close(s.lr(248, 0), 0.01));
        assert!(close(s.lr(249, 0), 0.001) && close(s.lr(349, 0), 0.001));
        let parsed: Schedule = serde_json::from_str(
            r#"{"kind":"steps","base":0.1,"milestones":[150,250],"factor":0.1,"timing":"official"}"#,
        )
        .unwrap();
        assert_eq!(parsed, s);
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=0.2, total_steps=100, pct_start=0.25)
        // (defaults div_factor=25, final_div_factor=1e4): the rate at the start, the peak and the end.
        let s = Schedule::OneCycle {
            peak: 0.2,
            total_steps: 100,
            pct_start: 0.25,
            div_factor: 25.0,
            final_div_factor: 1e4,
        };
        let expected = [(0, 0.008), (24, 0.2), (99, 0.008 / 1e4)];
        for (step, lr) in expected {
            assert!((s.lr(0, step) - lr).abs() < 1e-12, "step {step}: {} vs {lr}", s.lr(0, step));
        }
        // Half-way up: (0.008 + 0.2) / 2 at pct 0.5 of the warm-up (step 11.5 → between 11 and 12).
        assert!(s.lr(0, 11) < 0.104 && s.lr(0, 12) > 0.104);
        // Monotone up then down.
        let lrs: Vec<f64> = (0..100).map(|t| s.lr(0, t)).collect();
        assert!(lrs[..25].windows(2).all(|w| w[0] < w[1]) && lrs[24..].windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn inverse_sqrt_warms_up_then_decays() {
        let s = Schedule::InverseSqrt { peak: 7e-4, warmup: 4000 };
        assert!((s.lr(0, 1999) - 3.5e-4).abs() < 1e-12);
        assert!((s.lr(0, 3999) - 7e-4).abs() < 1e-15);
        assert!((s.lr(0, 15999) - 3.5e-4).abs() < 1e-12);
    }

    #[test]
    fn validation() {
        let timing = Timing::Standard;
        assert!(Schedule::Steps { base: 0.1, milestones: vec![250, 150], factor: 0.1, timing }.validate().is_err());
        assert!(Schedule::InverseSqrt { peak: 0.0, warmup: 10 }.validate().is_err());
        let toml_like: Schedule =
            serde_json::from_str(r#"{"kind":"steps","base":0.1,"milestones":[150,250],"factor":0.1}"#).unwrap();
        assert_eq!(toml_like.lr(200, 0), 0.1 * 0.1);
        assert!(serde_json::from_str::<Schedule>(
            r#"{"kind":"steps","base":0.1,"milestones":[],"factor":0.1,"typo":1}"#
        )
        .is_err());
    }
}
