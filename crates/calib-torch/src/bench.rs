//! `calib bench decode`: beam-search speed with and without the key/value cache on the same
//! sentences, and whether both give the same translations.

use crate::decode::{encode_checked, ToSearch};
use crate::mt;
use anyhow::Result;
use calib_cli::args::bench::DecodeArgs;
use calib_cli::output::{emit, Format};
use calib_mt::decode::{translate, Specials};
use calib_train::device;
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;

pub fn decode(a: &DecodeArgs, format: Format) -> Result<()> {
    let device = device::select(crate::args::device(a.device))?;
    let loaded = mt::load_run(&a.weights, None, device, |_, _| Ok(HashMap::new()))?;
    let (vocab, model) = (&loaded.vocab, loaded.task.model());
    let mut lines = calib_mt::corpus::read_segments(&a.src)?;
    lines.truncate(a.limit);
    let ids = encode_checked(vocab, &lines, model.config.max_positions, 1, &a.src.display().to_string())?;
    let time = |incremental: bool| -> Result<(f64, Vec<Vec<i64>>)> {
        let search = a.search.search(1.0, 1, incremental)?;
        let start = Instant::now();
        let hyps = translate(model, &ids, Specials::from(vocab), a.search.max_tokens, &search, device)?;
        let rate = lines.len() as f64 / start.elapsed().as_secs_f64().max(1e-9);
        Ok((rate, hyps.into_iter().map(|h| h[0].tokens.clone()).collect()))
    };
    let (cached, with) = time(true)?;
    let (full, without) = time(false)?;
    let same = with.iter().zip(&without).filter(|(a, b)| a == b).count();
    let json = json!({
        "sentences": lines.len(), "beam": a.search.beam, "device": format!("{device:?}"),
        "cached_sentences_per_second": cached, "uncached_sentences_per_second": full,
        "speedup": cached / full, "identical_translations": same,
    });
    emit(format, &json, || {
        format!(
            "{} sentences, beam {}: {cached:.1} sentences/s with the key/value cache, {full:.1} without ({:.2}×); {same} of {} translations identical",
            lines.len(),
            a.search.beam,
            cached / full,
            lines.len()
        )
    })
}
