//! `calib gamma`: γ*(p0) and the curves of g(p, γ).

use anyhow::{bail, Result};
use calib_cli::args::gamma::Args;
use calib_cli::output::{emit, Format};
use serde_json::json;

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
