//! `calib bleu`: BLEU (or chrF, chrF++, TER) of hypotheses on stdin against reference files, as
//! sacreBLEU 2.6.0 computes it, with its signature.

use anyhow::{bail, Context, Result};
use calib_cli::args::bleu::Args;
use calib_cli::output::{emit, Format};
use calib_mt::metrics::{self, BleuOptions, Smoothing};
use serde_json::json;
use std::io::Read;
use std::path::Path;

fn read(path: Option<&Path>) -> Result<Vec<String>> {
    let mut text = String::new();
    match path {
        Some(p) => {
            text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read as UTF-8 text", p.display()))?;
        }
        None => {
            std::io::stdin().read_to_string(&mut text).context("standard input: cannot read as UTF-8 text")?;
        }
    }
    Ok(metrics::segments(&text))
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let hyps = read(a.hyp.as_deref())?;
    let refs = a.refs.iter().map(|r| read(Some(r))).collect::<Result<Vec<_>>>()?;
    let hyp_name = a.hyp.as_ref().map_or("standard input".to_string(), |p| p.display().to_string());
    for (r, path) in refs.iter().zip(&a.refs) {
        if r.len() != hyps.len() {
            bail!("{hyp_name} has {} lines but {} has {}", hyps.len(), path.display(), r.len());
        }
    }
    match a.metric.as_str() {
        "bleu" => {
            let opts = BleuOptions::default()
                .with_tokenize(a.tokenize.parse()?)
                .with_lowercase(a.lowercase)
                .with_smoothing(Smoothing::parse(&a.smooth, a.smooth_value)?)
                .with_effective_order(a.effective_order);
            let r = metrics::corpus_bleu(&hyps, &refs, &opts)?;
            let json = serde_json::to_value(&r)?;
            emit(format, &json, || format!("BLEU = {:.2} {}\n{}", r.score, r.verbose, r.signature))
        }
        "chrf" | "chrf++" => {
            let r = metrics::corpus_chrf(&hyps, &refs, if a.metric == "chrf++" { 2 } else { 0 }, a.lowercase)?;
            emit(format, &serde_json::to_value(&r)?, || format!("{} = {:.2}\n{}", r.name, r.score, r.signature))
        }
        "ter" => {
            let (r, edits, ref_len) = metrics::corpus_ter(&hyps, &refs)?;
            let json = json!({"name": r.name, "score": r.score, "signature": r.signature, "num_edits": edits, "ref_length": ref_len});
            emit(format, &json, || format!("TER = {:.2}\n{}", r.score, r.signature))
        }
        other => bail!("unknown metric '{other}' (expected bleu, chrf, chrf++, ter)"),
    }
}
