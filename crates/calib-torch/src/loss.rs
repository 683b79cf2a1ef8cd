//! `calib loss`: a training loss and its gradient on saved logits, e.g. to check our losses
//! against another framework's.

use anyhow::{bail, Result};
use calib::loss::{Loss, LossSpec, Reduction};
use calib::npy;
use calib_cli::args::loss::Args;
use calib_cli::input::Precision;
use calib_cli::output::{emit, Format};
use calib_train::device;
use serde_json::json;
use tch::{Kind, Tensor};

pub fn run(a: &Args, format: Format) -> Result<()> {
    let spec: LossSpec = a.loss.parse()?;
    let loss = Loss::new(spec, a.reduction.parse::<Reduction>()?).with_ignore_index_opt(a.ignore_index);
    let values = npy::read_floats(&a.logits, 2, "logits")?;
    let labels = npy::read_labels(&a.labels)?;
    let (n, k) = (values.shape()[0], values.shape()[1]);
    if labels.len() != n {
        bail!("{} has {n} rows but {} has {} labels", a.logits.display(), a.labels.display(), labels.len());
    }
    if n == 0 || k == 0 {
        bail!("{}: shape [{n}, {k}] holds no scores (an empty batch has no loss)", a.logits.display());
    }
    if labels.iter().all(|&y| Some(y) == a.ignore_index) {
        bail!("{}: every label is the ignore index {}, so there is nothing to average", a.labels.display(), labels[0]);
    }
    let x: Vec<f64> = values.into_real();
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("{}: row {}, column {}: value {} is not finite", a.logits.display(), i / k, i % k, x[i]);
    }
    if let Some((i, &y)) =
        labels.iter().enumerate().find(|&(_, &y)| Some(y) != a.ignore_index && !(0..k as i64).contains(&y))
    {
        bail!("{}: label {y} at index {i} is outside 0..{k}", a.labels.display());
    }
    let device = device::select(crate::args::device(a.device))?;
    let kind = if a.precision == Precision::F32 { Kind::Float } else { Kind::Double };
    let logits =
        Tensor::from_slice(&x).view([n as i64, k as i64]).to_kind(kind).to_device(device).set_requires_grad(true);
    let targets = Tensor::from_slice(&labels).to_device(device);
    let value = loss.forward(&logits, &targets, a.epoch);
    let v = value.to_kind(Kind::Double).double_value(&[]);
    if !v.is_finite() {
        bail!("loss {} is {v} on {} (nothing written)", a.loss, a.logits.display());
    }
    if let Some(path) = &a.grad_out {
        value.backward();
        let g = logits.grad().to_device(tch::Device::Cpu).flatten(0, -1);
        match a.precision {
            Precision::F64 => npy::write(path, &[n, k], &Vec::<f64>::try_from(&g)?)?,
            Precision::F32 => npy::write(path, &[n, k], &Vec::<f32>::try_from(&g)?)?,
        }
    }
    let json = json!({"loss": v, "reduction": loss.reduction, "name": loss.spec.label(), "n": n, "classes": k, "device": format!("{device:?}")});
    emit(format, &json, || format!("{} ({:?} over {n} samples): {v}", loss.spec.label(), loss.reduction).to_lowercase())
}
