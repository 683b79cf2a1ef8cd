//! `calib decode`: translates sentences from stdin to stdout in input order, like
//! fairseq-interactive: lines are read in buffers, sorted by length into batches of at most
//! `--max-tokens` source tokens, searched with the beam, and written back in order as each buffer
//! finishes, so output streams.

use crate::mt;
use anyhow::{bail, Context, Result};
use calib_cli::args::decode::{Args, SearchArgs};
use calib_cli::output::{exit_on_broken_pipe, Format};
use calib_mt::decode::{translate, Hypothesis, LengthPenalty, Search, Specials};
use calib_mt::tokenize::Vocab;
use calib_train::device;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Instant;

/// The beam search the options ask for.
pub trait ToSearch {
    fn search(&self, temperature: f64, nbest: usize, incremental: bool) -> Result<Search>;
}

impl ToSearch for SearchArgs {
    fn search(&self, temperature: f64, nbest: usize, incremental: bool) -> Result<Search> {
        if self.beam == 0 || nbest == 0 || nbest > self.beam {
            bail!("need 1 ≤ --nbest ≤ --beam (got nbest {nbest}, beam {})", self.beam);
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            bail!("temperature {temperature} must be positive");
        }
        anyhow::ensure!(self.max_tokens > 0, "--max-tokens must be at least 1");
        let form = self.lenpen_form.parse::<LengthPenalty>().map_err(anyhow::Error::msg)?;
        Ok(Search::new(self.beam)
            .with_lenpen(self.lenpen, form)
            .with_temperature(temperature)
            .with_max_len(self.max_len_a, self.max_len_b)
            .with_nbest(nbest)
            .with_incremental(incremental))
    }
}

/// Source ids of `lines`, each checked against the model's positions (EOS included); `first`
/// is the input line number of `lines[0]`.
pub fn encode_checked(
    vocab: &Vocab,
    lines: &[String],
    max_positions: i64,
    first: usize,
    what: &str,
) -> Result<Vec<Vec<u32>>> {
    let ids = vocab.encode_batch(lines)?;
    if let Some((i, s)) = ids.iter().enumerate().find(|(_, s)| s.len() as i64 + 1 > max_positions) {
        bail!(
            "{what}, line {}: {} tokens, more than the {} the model takes (EOS included)",
            first + i,
            s.len(),
            max_positions - 1
        );
    }
    Ok(ids)
}

fn write_hyps(
    out: &mut impl Write,
    vocab: &Vocab,
    line: usize,
    hyps: &[Hypothesis],
    a: &Args,
    format: Format,
) -> Result<()> {
    let text = |h: &Hypothesis| vocab.decode(&h.tokens.iter().map(|&t| t as u32).collect::<Vec<_>>());
    match format {
        Format::Json => {
            let list = hyps
                .iter()
                .map(|h| Ok(json!({"text": text(h)?, "score": h.score, "tokens": h.tokens, "token_log_probs": h.token_log_probs})))
                .collect::<Result<Vec<_>>>()?;
            exit_on_broken_pipe(writeln!(out, "{}", json!({"line": line, "hypotheses": list})))?;
        }
        Format::Table => {
            for h in hyps {
                let t = text(h)?;
                if a.scores {
                    let lps: Vec<String> = h.token_log_probs.iter().map(|lp| format!("{lp:.4}")).collect();
                    exit_on_broken_pipe(writeln!(out, "{t}\t{:.4}\t{}", h.score, lps.join(" ")))?;
                } else {
                    exit_on_broken_pipe(writeln!(out, "{t}"))?;
                }
            }
        }
    }
    Ok(())
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let search = a.search.search(a.temperature, a.nbest, !a.no_cache)?;
    anyhow::ensure!(a.buffer > 0, "--buffer must be at least 1");
    let device = device::select(crate::args::device(a.device))?;
    let loaded = mt::load_run(&a.weights, a.tokenizer.as_deref(), device, |_, _| Ok(HashMap::new()))?;
    let (vocab, model) = (&loaded.vocab, loaded.task.model());
    let positions = model.config.max_positions;
    let stdin = std::io::stdin().lock();
    let mut lines = stdin.lines();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (started, mut done) = (Instant::now(), 0usize);
    loop {
        let mut buffer = Vec::with_capacity(a.buffer);
        for line in lines.by_ref() {
            buffer.push(
                line.with_context(|| format!("stdin, line {}: cannot read (not UTF-8?)", done + buffer.len() + 1))?,
            );
            if buffer.len() == a.buffer {
                break;
            }
        }
        if buffer.is_empty() {
            break;
        }
        let ids = encode_checked(vocab, &buffer, positions, done + 1, "stdin")?;
        let hyps = translate(model, &ids, Specials::from(vocab), a.search.max_tokens, &search, device)?;
        for (i, h) in hyps.iter().enumerate() {
            write_hyps(&mut out, vocab, done + i + 1, h, a, format)?;
        }
        exit_on_broken_pipe(out.flush())?;
        done += buffer.len();
        if buffer.len() < a.buffer {
            break;
        }
    }
    if !a.quiet {
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "translated {done} sentences in {s:.3} s ({:.2} sentences/s, beam {})",
            done as f64 / s.max(1e-9),
            a.search.beam
        );
    }
    Ok(())
}
