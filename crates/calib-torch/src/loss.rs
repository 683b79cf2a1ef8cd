//! `calib loss`: a training loss and its gradient on saved logits, e.g. to check our losses
//! against another framework's.

use anyhow::{bail, Result};
use calib::loss::{Loss, LossSpec, Reduction};
use calib::npy;
use calib_cli::input::Precision;
use calib_cli::output::{emit, Format};
use calib_train::device::{self, DeviceRequest};
use serde_json::json;
use std::path::PathBuf;
use tch::{Kind, Tensor};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub logits: PathBuf,
    #[arg(long)]
    pub labels: PathBuf,
    /// Loss name: ce, focal:3, flsd:53, flsd:532, flsd:0.2=5,0.5=3,1=2, flsd-auto:0.2,0.25,
    /// flsc:531, ls:0.05, brier, mmce:2, mmce-unweighted:2.
    #[arg(long)]
    pub loss: String,
    /// `sum` over the batch (the official image code) or `mean`.
    #[arg(long, default_value = "sum")]
    pub reduction: String,
    /// Epoch (for scheduled γ, flsc).
    #[arg(long, default_value_t = 0)]
    pub epoch: usize,
    /// Targets equal to this are padding and ignored.
    #[arg(long)]
    pub ignore_index: Option<i64>,
    /// Write d loss / d logits here (.npy, same shape and precision as the computation).
    #[arg(long)]
    pub grad_out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    #[arg(long, value_enum, default_value_t = DeviceRequest::Cpu)]
    pub device: DeviceRequest,
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let spec: LossSpec = a.loss.parse()?;
    let loss = Loss { spec, reduction: a.reduction.parse::<Reduction>()?, ignore_index: a.ignore_index };
    let values = npy::read_floats(&a.logits, 2, "logits")?;
    let labels = npy::read_labels(&a.labels)?;
    let (n, k) = (values.shape()[0], values.shape()[1]);
    if labels.len() != n {
        bail!("{} has {n} rows but {} has {} labels", a.logits.display(), a.labels.display(), labels.len());
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
    let device = device::select(a.device)?;
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
