//! `calib train`: a recipe and its overrides, a run folder, and the domain crate of the recipe's
//! kind of task, which trains it with the shared trainer.

use crate::progress::EpochBars;
use crate::tasks::Kind;
use anyhow::{Context, Result};
use calib_cli::args::train::Args;
use calib_cli::output::{emit, Format};
use calib_dist::{Backend, ProcessGroup, Rendezvous};
use calib_train::collective::{Collective, SingleProcess};
use calib_train::device::{self, DeviceRequest};
use calib_train::precision::Precision;
use calib_train::run::RunState;
use calib_train::trainer::{Fit, TrainConfig};
use serde_json::json;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The recipe values the options override.
trait Overrides {
    fn overrides(&self) -> Vec<String>;
}

impl Overrides for Args {
    fn overrides(&self) -> Vec<String> {
        let mut o = Vec::new();
        if let Some(l) = &self.loss {
            o.push(format!("train.loss=\"{l}\""));
        }
        if let Some(d) = &self.data {
            o.push(format!("data.dir=\"{}\"", d.display()));
        }
        if let Some(e) = self.epochs {
            o.push(format!("train.epochs={e}"));
        }
        if let Some(b) = self.batch_size {
            o.push(format!("train.batch_size={b}"));
        }
        if let Some(p) = self.precision.map(crate::args::precision) {
            o.push(format!("train.precision=\"{}\"", if p == Precision::Bf16 { "bf16" } else { "fp32" }));
        }
        o.extend(self.sets.iter().cloned());
        o
    }
}

/// A resolved recipe: its TOML with the overrides applied, its kind, where it came from, and
/// the run folder (a resumed run reads its own config.toml).
pub struct Resolved {
    pub table: toml::Table,
    pub kind: Kind,
    pub path: PathBuf,
    pub out: PathBuf,
}

pub fn resolve(a: &Args) -> Result<Resolved> {
    let (path, out) = if a.resume {
        let out = a.out.clone().context("--resume needs --out RUN_FOLDER")?;
        (out.join("config.toml"), out)
    } else {
        let path = a.recipe.clone().context("give --recipe FILE.toml (or --resume --out RUN)")?;
        let out = a.out.clone().unwrap_or_default();
        (path, out)
    };
    let table = calib_train::recipe::load(&path, &a.overrides())?;
    let kind = Kind::of(&table, &path)?;
    let out = if out.as_os_str().is_empty() {
        let stem = path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
        let loss = table.get("train").and_then(|t| t.get("loss")).and_then(|l| l.as_str()).unwrap_or("loss");
        PathBuf::from("runs").join(format!("{stem}-{}", loss.replace([':', ',', '='], "_")))
    } else {
        out
    };
    Ok(Resolved { table, kind, path, out })
}

/// How `calib train` starts: `--resume`, `--force`.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    pub resume: bool,
    pub force: bool,
}

/// Refuses a fresh run into a folder that holds files but is not a run of ours (a user's
/// `config.toml` would be overwritten, a foreign `metrics.jsonl` replaced).
fn check_foreign(out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() || calib_train::run::is_run_folder(out) {
        return Ok(());
    }
    names.sort();
    let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    let more = if names.len() > 3 { format!(" and {} more", names.len() - 3) } else { String::new() };
    anyhow::bail!(
        "{}: not empty and not a calib run (it holds {shown}{more}); choose another --out, or pass --force to train into it",
        out.display()
    )
}

/// Trains a resolved recipe with its domain crate, alone or as a rank of the group
/// `rendezvous` describes; returns the run state and the training settings.
pub fn train(
    r: Resolved,
    start: Start,
    device: DeviceRequest,
    quiet: bool,
    rendezvous: Option<&Rendezvous>,
) -> Result<(RunState, TrainConfig)> {
    let resume = start.resume;
    anyhow::ensure!(
        resume || !r.out.join("state.json").exists(),
        "{} already holds a run; use --resume to continue it or choose another --out",
        r.out.display()
    );
    if !resume && !start.force {
        check_foreign(&r.out)?;
    }
    let device = device::select(device)?;
    // A rank uses the GPU of its local rank; the checks above ran before any rank joined, so
    // none of them can see files rank 0 is writing.
    let (device, group) = match rendezvous {
        None => (device, None),
        Some(rv) => {
            let device = if device.is_cuda() { tch::Device::Cuda(rv.local_rank) } else { device };
            (device, Some(ProcessGroup::join(Backend::for_device(device), rv)?))
        }
    };
    let collective: &dyn Collective = match &group {
        Some(g) => g,
        None => &SingleProcess,
    };
    // Only rank 0 reports.
    let quiet = quiet || collective.rank() > 0;
    let mut bars = EpochBars::new(quiet);
    let mut log = |text: String| {
        if !quiet {
            eprintln!("{text}");
        }
    };
    let fit = Fit::new().collective(collective).observer(&mut bars);
    Ok(match r.kind {
        Kind::Image => {
            let recipe = calib_vision::recipe::Recipe::from_table(r.table, &r.path)?;
            let state = calib_vision::run::train(&recipe, &r.out, device, fit.resume(resume))?;
            (state, recipe.train)
        }
        Kind::Translation => {
            let mut recipe = calib_mt::recipe::MtRecipe::from_table(r.table, &r.path)?;
            if let (Some(g), false, None) = (&group, resume, &recipe.data.tokenizer) {
                // One vocabulary for every rank: rank 0 trains it, the others read it.
                let path = r.out.join("tokenizer.json");
                if g.rank() == 0 {
                    let vocab = recipe.vocab(&r.out, false, &mut log)?;
                    std::fs::create_dir_all(&r.out).with_context(|| format!("{}: cannot create", r.out.display()))?;
                    calib_mt::tokenize::save(vocab.tokenizer(), &path)?;
                }
                g.barrier()?;
                recipe.data.tokenizer = Some(path);
            }
            let state = calib_mt::run::train(&recipe, &r.out, device, fit, resume, &mut log)?;
            (state, recipe.train)
        }
        Kind::Text => {
            let recipe = calib_text::recipe::DocRecipe::from_table(r.table, &r.path)?;
            let state = calib_text::run::train_docs(&recipe, &r.out, device, fit, resume, &mut log)?;
            (state, recipe.train)
        }
        Kind::Tree => {
            let recipe = calib_text::recipe::TreeRecipe::from_table(r.table, &r.path)?;
            let state = calib_text::run::train_trees(&recipe, &r.out, device, fit, resume, &mut log)?;
            (state, recipe.train)
        }
    })
}

/// This program's arguments without `--nproc-per-node N` (what each local rank runs).
fn rank_arguments() -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--nproc-per-node" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--nproc-per-node=") {
            out.push(arg);
        }
    }
    out
}

pub fn run(a: &Args, format: Format) -> Result<()> {
    let timeout = Duration::from_secs(a.dist_timeout as u64);
    let rendezvous = Rendezvous::from_env(timeout)?;
    if let Some(n) = a.nproc_per_node {
        anyhow::ensure!(
            rendezvous.is_none(),
            "--nproc-per-node starts the ranks itself, but this process is already a rank (RANK/WORLD_SIZE or Slurm's variables are set): leave one of them out"
        );
        let program = std::env::current_exe().context("cannot find this program to start its ranks")?;
        // The ranks stop by themselves once a peer is gone; the grace covers a hung one.
        calib_dist::launch::spawn_local(&program, &rank_arguments(), n, timeout + Duration::from_secs(10))?;
        return Ok(());
    }
    let resolved = resolve(a)?;
    let out = resolved.out.clone();
    let start = Start { resume: a.resume, force: a.force };
    let (state, config) = train(resolved, start, crate::args::device(a.device), a.quiet, rendezvous.as_ref())?;
    if rendezvous.is_some_and(|r| r.rank > 0) {
        return Ok(());
    }
    let json = json!({"run": out, "epochs": state.epochs_done, "best_epoch": state.best_epoch, "best_value": state.best_value, "select_best_by": config.select_best_by});
    emit(format, &json, || {
        format!(
            "trained {} for {} epochs; best {:?} at epoch {:?}",
            out.display(),
            state.epochs_done,
            config.select_best_by,
            state.best_epoch
        )
    })
}
