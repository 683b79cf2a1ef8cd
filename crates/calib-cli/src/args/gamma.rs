//! `calib gamma`.

use super::values;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Threshold probability p0 in (0, 1): prints γ*(p0), the largest γ with g(p, γ) ≤ 1 for p ≥ p0.
    #[arg(long, value_parser = values::open_unit, allow_negative_numbers = true)]
    pub p0: Option<f64>,
    /// Write the curves g(p, γ) of the paper's Figure 3(a) to this SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The γ values plotted.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 2.0, 3.0, 4.0, 5.0], value_parser = values::non_negative, allow_negative_numbers = true)]
    pub gammas: Vec<f64>,
}
