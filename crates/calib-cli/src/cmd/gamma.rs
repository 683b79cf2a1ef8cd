//! `calib gamma`: γ*(p0) and the curves of g(p, γ).

use anyhow::{bail, Result};
use calib_cli::output::{emit, Format};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Threshold probability p0 in (0, 1): prints γ*(p0), the largest γ with g(p, γ) ≤ 1 for p ≥ p0.
    #[arg(long)]
    pub p0: Option<f64>,
    /// Write the curves g(p, γ) of the paper's Figure 3(a) to this SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The γ values plotted.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 2.0, 3.0, 4.0, 5.0])]
    pub gammas: Vec<f64>,
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    if a.p0.is_none() && a.plot.is_none() {
        bail!("nothing to do: give --p0 P and/or --plot FILE.svg");
    }
    let gamma_star = a.p0.map(calib::gamma::gamma_star).transpose()?;
    if let Some(path) = &a.plot {
        calib_report::plot::save(path, &calib_report::plot::gamma_curves(&a.gammas)?)?;
    }
    let json = json!({"p0": a.p0, "gamma_star": gamma_star, "plot": a.plot});
    emit(format, &json, || {
        let mut out = Vec::new();
        if let (Some(p0), Some(g)) = (a.p0, gamma_star) {
            out.push(format!("γ*({p0}) = {g:.7}"));
        }
        if let Some(p) = &a.plot {
            out.push(format!("wrote {}", p.display()));
        }
        out.join("\n")
    })
}
