//! Optimisers with PyTorch's update rules and state that can be saved and restored.
//!
//! `tch`'s optimisers wrap libtorch's C++ ones, whose state (momentum buffers, Adam moments)
//! cannot be read or written from Rust, so a resumed run would restart them from zero. These keep
//! their state as named tensors, saved in the same checkpoint as the weights. They follow
//! `torch.optim.SGD`, `Adam` and `Adagrad` exactly (tested against libtorch's own SGD and Adam).

use crate::error::{file, Result};
use crate::fused::{self, Lists, Rate};
use crate::run::OPTIMIZER_PREFIX;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn::VarStore, Kind, Tensor};

/// An optimiser and its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        nesterov: bool,
    },
    Adam {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    AdaGrad {
        #[serde(default = "adagrad_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_eps() -> f64 {
    1e-8
}
fn adagrad_eps() -> f64 {
    1e-10
}

impl OptimizerConfig {
    fn weight_decay(&self) -> f64 {
        match *self {
            Self::Sgd { weight_decay, .. } | Self::Adam { weight_decay, .. } | Self::AdaGrad { weight_decay, .. } => {
                weight_decay
            }
        }
    }
}

/// Parameters whose names start with `prefix` (the first group that matches) step with
/// `lr_scale` times the schedule's rate and, when given, their own weight decay: PyTorch's
/// parameter groups, as the reference Tree-LSTM uses them (its embeddings: AdaGrad at 0.1 beside
/// 0.05 for the rest, and no weight decay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamGroup {
    pub prefix: String,
    #[serde(default = "unit")]
    pub lr_scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
}

fn unit() -> f64 {
    1.0
}

impl ParamGroup {
    pub fn new(prefix: impl Into<String>, lr_scale: f64, weight_decay: Option<f64>) -> Self {
        Self { prefix: prefix.into(), lr_scale, weight_decay }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.prefix.is_empty() {
            return Err("a parameter group needs a non-empty prefix".into());
        }
        if !(self.lr_scale.is_finite() && self.lr_scale > 0.0) {
            return Err(format!("group '{}': lr_scale {} must be positive", self.prefix, self.lr_scale));
        }
        if let Some(wd) = self.weight_decay {
            if !(wd.is_finite() && wd >= 0.0) {
                return Err(format!("group '{}': weight_decay {wd} must be at least 0", self.prefix));
            }
        }
        Ok(())
    }
}

/// One trainable tensor and its optimiser buffers.
struct Param {
    name: String,
    value: Tensor,
    /// SGD momentum / Adam first moment / AdaGrad sum of squares.
    a: Option<Tensor>,
    /// Adam second moment.
    b: Option<Tensor>,
    /// Its group's factor on the learning rate and weight decay.
    lr_scale: f64,
    weight_decay: f64,
}

pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Param>,
    /// Steps taken (Adam's bias correction, AdaGrad's count).
    steps: i64,
    /// libtorch's fused kernels rather than the reference rule.
    fused: bool,
    /// The rate and the step count on the device, for CUDA graphs.
    counters: Option<Counters>,
}

/// The learning rate and the step count as float32 scalars on the parameters' device (see
/// [`Optimizer::use_device_counters`]).
struct Counters {
    lr: Tensor,
    steps: Tensor,
}

impl Optimizer {
    /// Optimises every trainable variable of `vs`, in name order (so state files are stable).
    pub fn new(config: OptimizerConfig, vs: &VarStore) -> Self {
        // Buffers such as batch-norm running statistics do not require gradients.
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let weight_decay = config.weight_decay();
        let params = named
            .into_iter()
            .map(|(name, value)| Param { name, value, a: None, b: None, lr_scale: 1.0, weight_decay })
            .collect();
        Self { config, params, steps: 0, fused: true, counters: None }
    }

    /// Keeps the learning rate and the step count in float32 scalars on the parameters' device:
    /// a CUDA graph that records [`Optimizer::step`] then replays with the rate last given to
    /// [`Optimizer::set_lr`] (the `lr` argument of `step` is not read) and counts its steps
    /// itself, where numbers would be frozen into the recording. The fused SGD and Adam kernels
    /// take the rate as a tensor; the reference rule and AdaGrad cannot, and are refused.
    pub fn use_device_counters(&mut self) -> Result<()> {
        if !self.fused || matches!(self.config, OptimizerConfig::AdaGrad { .. }) {
            return Err(crate::Error::Config(
                "a recorded (CUDA-graph) step needs the fused SGD or Adam kernels, which read the rate from the device"
                    .into(),
            ));
        }
        let device = self.params.first().map_or(tch::Device::Cpu, |p| p.value.device());
        self.counters = Some(Counters {
            lr: Tensor::zeros([], (Kind::Float, device)),
            steps: Tensor::full([], self.steps as f64, (Kind::Float, device)),
        });
        Ok(())
    }

    /// The rate the next steps take, with device counters (a no-op without): call it outside a
    /// recording, before the step or the replay.
    pub fn set_lr(&mut self, lr: f64) {
        if let Some(c) = &mut self.counters {
            let _ = c.lr.fill_(lr);
        }
    }

    /// Gives the parameters of each group its rate factor and weight decay; a group that matches
    /// no trainable parameter is an error (a misspelt prefix would otherwise change nothing).
    pub fn with_groups(mut self, groups: &[ParamGroup]) -> Result<Self> {
        let mut matched = vec![false; groups.len()];
        for p in &mut self.params {
            if let Some(i) = groups.iter().position(|g| p.name.starts_with(&g.prefix)) {
                matched[i] = true;
                p.lr_scale = groups[i].lr_scale;
                p.weight_decay = groups[i].weight_decay.unwrap_or(p.weight_decay);
            }
        }
        match groups.iter().zip(&matched).find(|(_, m)| !**m) {
            Some((g, _)) => Err(crate::Error::Config(format!(
                "parameter group '{}' matches no trainable parameter (they are: {})",
                g.prefix,
                self.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
            None => Ok(self),
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.value.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// The defined gradients, in parameter name order (what data-parallel ranks reduce).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.value.grad()).filter(|g| g.defined()).collect()
    }

    /// Scales gradients so their global L2 norm is at most `max`; returns the norm before
    /// clipping (as `torch.nn.utils.clip_grad_norm_`). The scale is computed and applied on the
    /// device (no host synchronisation); a factor of exactly 1 leaves the gradients unchanged.
    pub fn clip_grad_norm(&mut self, max: f64) -> Tensor {
        let grads = self.grads();
        if grads.is_empty() {
            return Tensor::from(0.0);
        }
        tch::no_grad(|| {
            let squares: Vec<Tensor> =
                grads.iter().map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double)).collect();
            let norm = Tensor::stack(&squares, 0).sum(Kind::Double).sqrt();
            let coef = (max / (&norm + 1e-6)).clamp_max(1.0);
            for g in &grads {
                let _ = g.shallow_clone().g_mul_(&coef.to_kind(g.kind()));
            }
            norm
        })
    }

    /// One update with learning rate `lr`: libtorch's fused kernels (`torch.optim`'s
    /// `fused=True`), or the reference rule after [`Optimizer::unfused`]. The two agree to
    /// rounding (tested); AdaGrad on CUDA takes the reference rule, as libtorch has no fused
    /// CUDA kernel for it.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        self.steps += 1;
        if let Some(c) = &mut self.counters {
            let _ = c.steps.g_add_scalar_(1.0);
        }
        if !self.fused {
            let (config, t) = (self.config.clone(), self.steps);
            tch::no_grad(|| {
                for p in &mut self.params {
                    reference(&config, p, lr, t);
                }
            });
            return Ok(());
        }
        tch::no_grad(|| self.step_fused(lr))
    }

    /// Use the reference update rule (a chain of element-wise operations per parameter, as
    /// `torch.optim`'s single-tensor implementation) instead of the fused kernels.
    pub fn unfused(mut self) -> Self {
        self.fused = false;
        self
    }

    fn step_fused(&mut self, lr: f64) -> Result<()> {
        let (config, t) = (self.config.clone(), self.steps);
        // Parameters one kernel call takes together: the same rate factor, decay, device and
        // dtype, and whether their buffers exist yet (SGD's first step sets them).
        type Key = (u64, u64, tch::Device, Kind, bool);
        let mut groups: Vec<(Key, Vec<usize>)> = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !p.value.grad().defined() {
                continue;
            }
            let key = (p.lr_scale.to_bits(), p.weight_decay.to_bits(), p.value.device(), p.value.kind(), p.a.is_some());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for ((_, _, device, _, has_state), members) in groups {
            if device.is_cuda() && matches!(config, OptimizerConfig::AdaGrad { .. }) {
                for &i in &members {
                    reference(&config, &mut self.params[i], lr, t);
                }
                continue;
            }
            let (scale, weight_decay) = {
                let first = &self.params[members[0]];
                (first.lr_scale, first.weight_decay)
            };
            let rate = || match &self.counters {
                Some(c) if scale == 1.0 => Rate::Tensor(c.lr.shallow_clone()),
                Some(c) => Rate::Tensor(&c.lr * scale),
                None => Rate::Value(lr * scale),
            };
            let mut lists = Lists { params: Vec::new(), grads: Vec::new(), a: Vec::new(), b: Vec::new() };
            for &i in &members {
                let p = &mut self.params[i];
                let g = p.value.grad();
                let two = matches!(config, OptimizerConfig::Adam { .. });
                let needs_a = !matches!(config, OptimizerConfig::Sgd { momentum, .. } if momentum == 0.0);
                if needs_a {
                    // SGD's first step overwrites its buffer; the others start from zeros.
                    let fresh =
                        if matches!(config, OptimizerConfig::Sgd { .. }) { g.empty_like() } else { g.zeros_like() };
                    lists.a.push(p.a.get_or_insert(fresh).shallow_clone());
                }
                if two {
                    lists.b.push(p.b.get_or_insert_with(|| g.zeros_like()).shallow_clone());
                }
                lists.params.push(p.value.shallow_clone());
                lists.grads.push(g);
            }
            let step = || match &self.counters {
                Some(c) => c.steps.shallow_clone(),
                None => Tensor::full([], t as f64, (Kind::Float, device)),
            };
            match config {
                OptimizerConfig::Sgd { momentum, dampening, nesterov, .. } => fused::sgd(
                    &mut lists,
                    rate(),
                    (momentum, dampening, weight_decay, nesterov),
                    !has_state && momentum != 0.0,
                ),
                OptimizerConfig::Adam { beta1, beta2, eps, .. } => {
                    fused::adam(&mut lists, &mut step(), rate(), (beta1, beta2, eps, weight_decay))
                }
                OptimizerConfig::AdaGrad { eps, .. } => {
                    fused::adagrad(&mut lists, &mut step(), lr * scale, (eps, weight_decay))
                }
            }
            .map_err(crate::Error::Optimizer)?;
        }
        Ok(())
    }

    /// The optimiser's state as named tensors (`optim.<param>.a`, `.b`, `optim.steps`), to be
    /// saved next to the weights.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        // With device counters, the count a recorded step kept (replays do not pass through here).
        let steps = match &self.counters {
            Some(c) => c.steps.to_kind(Kind::Int64).to_device(tch::Device::Cpu).reshape([1]),
            None => Tensor::from_slice(&[self.steps]),
        };
        let mut out = vec![(format!("{OPTIMIZER_PREFIX}steps"), steps)];
        for p in &self.params {
            if let Some(a) = &p.a {
                out.push((format!("{OPTIMIZER_PREFIX}{}.a", p.name), a.shallow_clone()));
            }
            if let Some(b) = &p.b {
                out.push((format!("{OPTIMIZER_PREFIX}{}.b", p.name), b.shallow_clone()));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state`] saved. Each buffer takes its parameter's device and
    /// memory layout: the fused kernels walk a parameter, its gradient and its buffers as flat
    /// arrays, so a channels-last weight needs channels-last buffers, while checkpoints hold NCHW.
    pub fn load_state(&mut self, saved: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        let steps = saved
            .get(&format!("{OPTIMIZER_PREFIX}steps"))
            .ok_or_else(|| file(path, "the checkpoint has no optimiser state"))?;
        self.steps = steps.int64_value(&[0]);
        if let Some(c) = &mut self.counters {
            let _ = c.steps.fill_(self.steps as f64);
        }
        for p in &mut self.params {
            let mut fetched = [None, None];
            for (slot, suffix) in fetched.iter_mut().zip(["a", "b"]) {
                let Some(buf) = saved.get(&format!("{OPTIMIZER_PREFIX}{}.{suffix}", p.name)) else { continue };
                if buf.size() != p.value.size() {
                    return Err(file(
                        path,
                        format!(
                            "optimiser state for {} has shape {:?}, the parameter {:?}",
                            p.name,
                            buf.size(),
                            p.value.size()
                        ),
                    ));
                }
                let mut like = p.value.detach().empty_like().to_kind(buf.kind());
                tch::no_grad(|| like.copy_(buf));
                *slot = Some(like);
            }
            let [a, b] = fetched;
            (p.a, p.b) = (a, b);
        }
        Ok(())
    }
}

/// The reference update of one parameter at step `t` (PyTorch's single-tensor rules).
fn reference(config: &OptimizerConfig, p: &mut Param, lr: f64, t: i64) {
    let g = p.value.grad();
    if !g.defined() {
        return;
    }
    let (lr, weight_decay) = (lr * p.lr_scale, p.weight_decay);
    match *config {
        OptimizerConfig::Sgd { momentum, dampening, nesterov, .. } => {
            let mut d = if weight_decay != 0.0 { &g + &p.value * weight_decay } else { g.shallow_clone() };
            if momentum != 0.0 {
                let buf = match p.a.take() {
                    None => d.copy(),
                    Some(b) => b * momentum + &d * (1.0 - dampening),
                };
                d = if nesterov { &d + &buf * momentum } else { buf.shallow_clone() };
                p.a = Some(buf);
            }
            let _ = p.value.g_sub_(&(d * lr));
        }
        OptimizerConfig::Adam { beta1, beta2, eps, .. } => {
            let g = if weight_decay != 0.0 { &g + &p.value * weight_decay } else { g.shallow_clone() };
            let m = p.a.take().unwrap_or_else(|| g.zeros_like()) * beta1 + &g * (1.0 - beta1);
            let v = p.b.take().unwrap_or_else(|| g.zeros_like()) * beta2 + g.square() * (1.0 - beta2);
            let bc1 = 1.0 - beta1.powi(t as i32);
            let bc2 = 1.0 - beta2.powi(t as i32);
            let denom = v.sqrt() / bc2.sqrt() + eps;
            let _ = p.value.g_sub_(&(&m / denom * (lr / bc1)));
            p.a = Some(m);
            p.b = Some(v);
        }
        OptimizerConfig::AdaGrad { eps, .. } => {
            let g = if weight_decay != 0.0 { &g + &p.value * weight_decay } else { g.shallow_clone() };
            let sum = p.a.take().unwrap_or_else(|| g.zeros_like()) + g.square();
            let _ = p.value.g_sub_(&(&g / (sum.sqrt() + eps) * lr));
            p.a = Some(sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig as _};
    use tch::Device;

    /// A small least-squares problem: the same model, data and steps for ours and libtorch's.
    /// Weights and data from a generator of our own: libtorch's is global and tests run in
    /// parallel, so two calls must not depend on it to be identical.
    fn problem(seed: u64) -> (VarStore, nn::Linear, Tensor, Tensor) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let mut vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 5, 3, Default::default());
        vs.set_kind(Kind::Double);
        tch::no_grad(|| {
            lin.ws.shallow_clone().copy_(&Tensor::from_slice(&values(15)).view([3, 5]));
            lin.bs.as_ref().expect("bias").shallow_clone().copy_(&Tensor::from_slice(&values(3)));
        });
        let x = Tensor::from_slice(&values(80)).view([16, 5]);
        let y = Tensor::from_slice(&values(48)).view([16, 3]);
        (vs, lin, x, y)
    }

    fn run_ours(config: OptimizerConfig, steps: usize) -> Vec<f64> {
        let (vs, lin, x, y) = problem(7);
        let mut opt = Optimizer::new(config, &vs);
        for s in 0..steps {
            opt.zero_grad();
            (lin.forward(&x) - &y).square().mean(Kind::Double).backward();
            opt.step(0.05 / (1 + s) as f64).unwrap();
        }
        Vec::<f64>::try_from(lin.ws.flatten(0, -1)).unwrap()
    }

    fn run_torch(mut opt: nn::Optimizer, vs_lin: (VarStore, nn::Linear, Tensor, Tensor), steps: usize) -> Vec<f64> {
        let (_vs, lin, x, y) = vs_lin;
        for s in 0..steps {
            opt.set_lr(0.05 / (1 + s) as f64);
            opt.zero_grad();
            (lin.forward(&x) - &y).square().mean(Kind::Double).backward();
            opt.step();
        }
        Vec::<f64>::try_from(lin.ws.flatten(0, -1)).unwrap()
    }

    fn assert_close(a: &[f64], b: &[f64]) {
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    }

    #[test]
    fn sgd_nesterov_weight_decay_matches_libtorch() {
        let ours =
            run_ours(OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: true }, 6);
        let p = problem(7);
        let torch = nn::sgd(0.9, 0.0, 5e-4, true).build(&p.0, 0.05).unwrap();
        assert_close(&ours, &run_torch(torch, p, 6));
    }

    #[test]
    fn adam_matches_libtorch() {
        let ours = run_ours(OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 }, 6);
        let p = problem(7);
        let torch = nn::adam(0.9, 0.98, 0.0).eps(1e-9).build(&p.0, 0.05).unwrap();
        assert_close(&ours, &run_torch(torch, p, 6));
    }

    /// libtorch's fused kernels and the reference rule take the same steps, for every optimiser
    /// and setting the recipes use, with a parameter group at its own rate and decay.
    #[test]
    fn fused_kernels_equal_the_reference_rule() {
        let sgd = |momentum, dampening, weight_decay, nesterov| OptimizerConfig::Sgd {
            momentum,
            dampening,
            weight_decay,
            nesterov,
        };
        for config in [
            sgd(0.9, 0.0, 5e-4, true),
            sgd(0.9, 0.1, 5e-4, false),
            sgd(0.0, 0.0, 1e-2, false),
            OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 1e-2 },
            OptimizerConfig::AdaGrad { eps: 1e-10, weight_decay: 1e-2 },
        ] {
            let run = |fused: bool| {
                let (vs, lin, x, y) = problem(11);
                let groups = [ParamGroup::new("lin.bias", 2.0, Some(0.0))];
                let opt = Optimizer::new(config.clone(), &vs).with_groups(&groups).unwrap();
                let mut opt = if fused { opt } else { opt.unfused() };
                for s in 0..6 {
                    opt.zero_grad();
                    (lin.forward(&x) - &y).square().mean(Kind::Double).backward();
                    opt.step(0.05 / (1 + s) as f64).unwrap();
                }
                let w = Vec::<f64>::try_from(lin.ws.flatten(0, -1)).unwrap();
                let b = Vec::<f64>::try_from(lin.bs.as_ref().unwrap()).unwrap();
                (w, b)
            };
            let (fused, reference) = (run(true), run(false));
            assert_close(&fused.0, &reference.0);
            assert_close(&fused.1, &reference.1);
            let start = Vec::<f64>::try_from(problem(11).1.ws.flatten(0, -1)).unwrap();
            assert!(fused.0.iter().zip(&start).all(|(a, b)| (a - b).abs() > 1e-6), "{config:?}: no step");
        }
    }

    #[test]
    fn adagrad_by_hand() {
        // One scalar parameter w = 1 with loss w²: g = 2w. AdaGrad: s = g², w -= lr g / (sqrt(s) + eps).
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(1.0));
        let mut opt = Optimizer::new(OptimizerConfig::AdaGrad { eps: 1e-10, weight_decay: 0.0 }, &vs);
        let (mut wv, mut s) = (1.0f64, 0.0f64);
        for _ in 0..3 {
            opt.zero_grad();
            w.square().sum(Kind::Float).backward();
            opt.step(0.1).unwrap();
            let g = 2.0 * wv;
            s += g * g;
            wv -= 0.1 * g / (s.sqrt() + 1e-10);
        }
        assert!((w.double_value(&[0]) - wv).abs() < 1e-6);
    }

    #[test]
    fn groups_scale_the_rate_and_replace_the_decay() {
        // Two parameters with loss (a + b)²: plain SGD, `a` at twice the rate and without the
        // decay the other keeps; each step checked by hand.
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().var("embed", &[1], nn::Init::Const(1.0));
        let b = vs.root().var("rest", &[1], nn::Init::Const(1.0));
        let sgd = OptimizerConfig::Sgd { momentum: 0.0, dampening: 0.0, weight_decay: 0.1, nesterov: false };
        let mut opt = Optimizer::new(sgd.clone(), &vs).with_groups(&[ParamGroup::new("emb", 2.0, Some(0.0))]).unwrap();
        let (mut av, mut bv) = (1.0f64, 1.0f64);
        for _ in 0..3 {
            opt.zero_grad();
            (&a + &b).square().sum(Kind::Float).backward();
            opt.step(0.05).unwrap();
            let g = 2.0 * (av + bv);
            (av, bv) = (av - 0.1 * g, bv - 0.05 * (g + 0.1 * bv));
        }
        assert!((a.double_value(&[0]) - av).abs() < 1e-6 && (b.double_value(&[0]) - bv).abs() < 1e-6);
        let err = Optimizer::new(sgd, &vs).with_groups(&[ParamGroup::new("encoder", 1.0, None)]).err().unwrap();
        assert!(err.to_string().contains("'encoder' matches no trainable parameter (they are: embed, rest)"), "{err}");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let config = OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: true };
        let straight = run_ours(config.clone(), 6);
        // 3 steps, save weights and state, rebuild everything, load, 3 more steps.
        let (vs, lin, x, y) = problem(7);
        let mut opt = Optimizer::new(config.clone(), &vs);
        let step = |opt: &mut Optimizer, s: usize| {
            opt.zero_grad();
            (lin.forward(&x) - &y).square().mean(Kind::Double).backward();
            opt.step(0.05 / (1 + s) as f64).unwrap();
        };
        for s in 0..3 {
            step(&mut opt, s);
        }
        let saved: HashMap<String, Tensor> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let mut fresh = Optimizer::new(config, &vs);
        fresh.load_state(&saved, Path::new("test")).unwrap();
        for s in 3..6 {
            step(&mut fresh, s);
        }
        assert_close(&Vec::<f64>::try_from(lin.ws.flatten(0, -1)).unwrap(), &straight);
    }

    /// Fused SGD and Adam on channels-last convolution weights take the steps they take on NCHW
    /// weights, across a save and load of their state (which checkpoints hold in NCHW order).
    #[test]
    fn channels_last_weights_step_as_nchw_ones_across_a_reload() {
        use crate::memory_format::{channels_last, is_channels_last, to_channels_last};
        let sgd = OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: false };
        let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 };
        let x = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
        let (w0, b0) = (
            Tensor::randn([6, 3, 3, 3], (Kind::Float, Device::Cpu)) / 4.0,
            Tensor::zeros([6], (Kind::Float, Device::Cpu)),
        );
        for config in [sgd, adam] {
            let run = |nhwc: bool| {
                let vs = VarStore::new(Device::Cpu);
                let conv = nn::conv2d(vs.root(), 3, 6, 3, Default::default());
                // The same start on both sides, whatever other tests draw from libtorch's generator.
                tch::no_grad(|| {
                    conv.ws.shallow_clone().copy_(&w0);
                    conv.bs.as_ref().expect("bias").shallow_clone().copy_(&b0);
                });
                if nhwc {
                    to_channels_last(&vs);
                }
                let x = if nhwc { channels_last(&x) } else { x.shallow_clone() };
                let mut opt = Optimizer::new(config.clone(), &vs);
                let step = |opt: &mut Optimizer| {
                    opt.zero_grad();
                    x.apply(&conv).square().mean(Kind::Float).backward();
                    opt.step(0.05).unwrap();
                };
                for _ in 0..3 {
                    step(&mut opt);
                }
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("state.safetensors");
                crate::checkpoint::save_tensors(&file, &opt.state()).unwrap();
                let mut opt = Optimizer::new(config.clone(), &vs);
                opt.load_state(&crate::checkpoint::load_tensors(&file).unwrap(), &file).unwrap();
                for _ in 0..3 {
                    step(&mut opt);
                }
                assert_eq!(is_channels_last(&conv.ws), nhwc);
                conv.ws.contiguous()
            };
            let (want, got) = (run(false), run(true));
            assert!(got.allclose(&want, 1e-5, 1e-6, false), "{config:?}: {}", (got - want).abs().max());
        }
    }

    /// With the rate and step count on the device, SGD and Adam take the steps they take with
    /// numbers (a changing rate, a group with its own factor, a save and load of the state), and
    /// the reference rule is refused.
    #[test]
    fn device_counters_step_as_numbers_do() {
        let sgd = OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: true };
        let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 1e-4 };
        for config in [sgd, adam] {
            let run = |counters: bool| {
                let (vs, lin, x, y) = problem(7);
                let groups = [ParamGroup::new("lin.bias", 0.5, None)];
                let new = || {
                    let mut opt = Optimizer::new(config.clone(), &vs).with_groups(&groups).unwrap();
                    if counters {
                        opt.use_device_counters().unwrap();
                    }
                    opt
                };
                let step = |opt: &mut Optimizer, s: usize| {
                    // Powers of two: the device rate is a float32, the parameters are f64.
                    let lr = 0.125 / (1 << s) as f64;
                    opt.set_lr(lr);
                    opt.zero_grad();
                    (lin.forward(&x) - &y).square().mean(Kind::Double).backward();
                    // With counters the rate comes from set_lr: a wrong number here must not matter.
                    opt.step(if counters { 123.0 } else { lr }).unwrap();
                };
                let mut opt = new();
                for s in 0..3 {
                    step(&mut opt, s);
                }
                let saved: HashMap<String, Tensor> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
                assert_eq!(saved[&format!("{OPTIMIZER_PREFIX}steps")].int64_value(&[0]), 3);
                let mut opt = new();
                opt.load_state(&saved, Path::new("test")).unwrap();
                for s in 3..6 {
                    step(&mut opt, s);
                }
                Vec::<f64>::try_from(lin.ws.flatten(0, -1)).unwrap()
            };
            assert_close(&run(true), &run(false));
        }
        let (vs, ..) = problem(7);
        let sgd = OptimizerConfig::Sgd { momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false };
        assert!(Optimizer::new(sgd, &vs).unfused().use_device_counters().is_err());
    }

    #[test]
    fn clip_grad_norm_scales_to_the_limit() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(0.0));
        let mut opt = Optimizer::new(
            OptimizerConfig::Sgd { momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false },
            &vs,
        );
        opt.zero_grad();
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float).backward();
        let norm = opt.clip_grad_norm(2.0).double_value(&[]);
        assert!((norm - 5.0).abs() < 1e-6);
        let g = Vec::<f32>::try_from(w.grad()).unwrap();
        assert!((g[0] - 1.2).abs() < 1e-5 && (g[1] - 1.6).abs() < 1e-5);
        // Under the limit the gradients stay exactly as they were.
        let before = Vec::<f32>::try_from(w.grad()).unwrap();
        let _ = opt.clip_grad_norm(100.0);
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), before);
    }
}
