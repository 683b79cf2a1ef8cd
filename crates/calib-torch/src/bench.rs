//! `calib bench decode`: beam-search speed with and without the key/value cache on the same
//! sentences, and whether both give the same translations. `calib bench text`: training steps of
//! the text models on their real data, the Tree-LSTM level-batched against node by node.
//! `calib bench train`: the full training step of the paper's networks on synthetic batches.

use crate::decode::{encode_checked, ToSearch};
use crate::mt;
use crate::tasks::Kind;
use anyhow::Result;
use calib_cli::args::bench::{DecodeArgs, TextArgs, TrainArgs};
use calib_cli::output::{emit, Format};
use calib_mt::decode::{translate, Specials};
use calib_text::task::{DocBatch, TreeBatch};
use calib_train::device;
use calib_train::optim::{Optimizer, OptimizerConfig};
use calib_train::step_graph::{CudaGraph, GraphedStep, StepOut, WARM_UP_STEPS};
use calib_train::task::{Batch, Data, Shard, Task};
use calib_train::trainer::TrainConfig;
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;
use tch::{Kind as Dtype, Reduction, Tensor};

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

/// The first `n` training batches of epoch 0, on `device`.
fn batches<D: Data>(data: &D, n: usize, seed: u64, device: tch::Device) -> Vec<D::Batch> {
    data.train_batches(0, seed, Shard::WHOLE).take(n).map(|b| b.map_tensors(&mut |t| t.to_device(device))).collect()
}

/// Seconds for one training step (loss, backward, the recipe's optimiser step) per batch, after
/// two untimed warm-up steps.
fn time_steps<B>(batches: &[B], opt: &mut Optimizer, lr: f64, loss: impl Fn(&B) -> Tensor) -> Result<f64> {
    let mut step = |b: &B| -> Result<f64> {
        opt.zero_grad();
        let l = loss(b);
        l.backward();
        opt.step(lr)?;
        Ok(l.double_value(&[]))
    };
    for b in batches.iter().take(2) {
        step(b)?;
    }
    let start = Instant::now();
    for b in batches {
        step(b)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn optimizer(task: &impl Task, train: &TrainConfig) -> Result<Optimizer> {
    Ok(Optimizer::new(train.optimizer.clone(), task.var_store()).with_groups(&train.groups)?)
}

pub fn text(a: &TextArgs, format: Format) -> Result<()> {
    let device = device::select(crate::args::device(a.device))?;
    let table = calib_train::recipe::load(&a.recipe, &a.sets)?;
    let n = a.batches as usize;
    let json = match Kind::of(&table, &a.recipe)? {
        Kind::Tree => {
            let recipe = calib_text::recipe::TreeRecipe::from_table(table, &a.recipe)?;
            let (task, _) = calib_text::run::tree_task(&recipe, None, device, &mut |_| {})?;
            let lr = recipe.train.schedule.lr(0, 0);
            let batches: Vec<TreeBatch> = batches(task.data(), n, recipe.train.seed, device);
            let trees: i64 = batches.iter().map(|b| b.roots.size()[0]).sum();
            let model = task.model();
            // The same loss (summed over the labelled nodes) from either way of computing the states.
            let loss = |b: &TreeBatch, train: bool, by_level: bool| {
                let h = if by_level {
                    model.forward_levels(b.nodes, &b.words, &b.levels, train)
                } else {
                    model.forward_nodes(b.nodes, &b.words, &b.levels, train)
                };
                let logits = model.classify(&h.index_select(0, &b.labelled), train);
                logits.cross_entropy_loss::<Tensor>(&b.labels, None, Reduction::Sum, -100, 0.0)
            };
            // The check that batching changes nothing: both losses of the first batch, no dropout.
            let (same_a, same_b) = tch::no_grad(|| {
                (loss(&batches[0], false, true).double_value(&[]), loss(&batches[0], false, false).double_value(&[]))
            });
            let mut opt = optimizer(&task, &recipe.train)?;
            let levels = time_steps(&batches, &mut opt, lr, |b| loss(b, true, true))?;
            let nodes = time_steps(&batches, &mut opt, lr, |b| loss(b, true, false))?;
            json!({
                "model": "tree-lstm", "device": format!("{device:?}"), "batches": n, "trees": trees,
                "batch_size": recipe.train.batch_size, "threads": tch::get_num_threads(),
                "level_batched_trees_per_second": trees as f64 / levels,
                "node_by_node_trees_per_second": trees as f64 / nodes,
                "speedup": nodes / levels,
                "first_batch_loss": {"level_batched": same_a, "node_by_node": same_b},
            })
        }
        Kind::Text => {
            let recipe = calib_text::recipe::DocRecipe::from_table(table, &a.recipe)?;
            let (task, _) = calib_text::run::doc_task(&recipe, None, device, &mut |_| {})?;
            let lr = recipe.train.schedule.lr(0, 0);
            let batches: Vec<DocBatch> = batches(task.data(), n, recipe.train.seed, device);
            let docs: i64 = batches.iter().map(|b| b.labels.size()[0]).sum();
            let mut opt = optimizer(&task, &recipe.train)?;
            let train = time_steps(&batches, &mut opt, lr, |b| {
                let (logits, labels) = task.forward(b, true).expect("forward");
                logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0)
            })?;
            let start = Instant::now();
            tch::no_grad(|| -> Result<()> {
                for b in &batches {
                    let _ = task.forward(b, false)?.0.sum(Dtype::Float).double_value(&[]);
                }
                Ok(())
            })?;
            let eval = start.elapsed().as_secs_f64();
            json!({
                "model": "gp-cnn", "device": format!("{device:?}"), "batches": n, "documents": docs,
                "batch_size": recipe.train.batch_size, "max_len": recipe.data.max_len, "threads": tch::get_num_threads(),
                "train_documents_per_second": docs as f64 / train,
                "eval_documents_per_second": docs as f64 / eval,
            })
        }
        _ => anyhow::bail!("{}: calib bench text takes a text or tree recipe", a.recipe.display()),
    };
    emit(format, &json, || json.to_string())
}

/// What `calib bench train` steps: an image network or a Transformer. Its synthetic batch is
/// `[x, y]` or `[src, tgt_in, y]`.
enum Bench {
    Image(Box<dyn calib_train::classifier::Classifier>),
    Transformer(Box<calib_mt::transformer::Transformer>),
}

pub fn train(a: &TrainArgs, format: Format) -> Result<()> {
    let device = device::select(crate::args::device(a.device))?;
    let precision = crate::args::precision(a.precision);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(device);
    let transformer = a.model.strip_prefix("transformer-");
    // The recipes' settings: SGD as the official image code (no clipping), Adam and clipping at
    // 1 as the translation recipes; cross-entropy, label smoothing 0.1 for translation.
    let (bench, inputs, samples, optimizer, clip, loss) = match transformer {
        Some(size) => {
            let vocab = a.classes.unwrap_or(32_000) as i64;
            let config = calib_mt::transformer::Config::preset(size, vocab).map_err(anyhow::Error::msg)?;
            let (len, tokens) = (a.length as i64, a.tokens.unwrap_or(4096) as i64);
            let n = (tokens / len).max(1);
            let ids = |_| Tensor::randint_low(4, vocab, [n, len], (Dtype::Int64, device));
            let bench = Bench::Transformer(Box::new(calib_mt::transformer::Transformer::new(&vs.root(), config)));
            let inputs = vec![ids(0), ids(1), ids(2).view([-1])];
            let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 };
            (bench, inputs, n * len, adam, Some(1.0), "ls:0.1")
        }
        None => {
            let arch: calib_vision::models::Arch = a.model.parse().map_err(anyhow::Error::msg)?;
            let (b, side) = (a.batch_size.unwrap_or(128) as i64, a.image_size as i64);
            let classes = a.classes.unwrap_or(10) as i64;
            let model = calib_vision::models::build(arch, &vs.root(), classes);
            let x = Tensor::randn([b, 3, side, side], (Dtype::Float, device));
            let x = if !a.nchw {
                calib_train::memory_format::to_channels_last(&vs);
                calib_train::memory_format::channels_last(&x)
            } else {
                x
            };
            let bench = Bench::Image(model);
            let inputs = vec![x, Tensor::randint(classes, [b], (Dtype::Int64, device))];
            let sgd = OptimizerConfig::Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: false };
            (bench, inputs, b, sgd, None, "ce")
        }
    };
    let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let loss = calib::loss::Loss::new(loss.parse()?, calib::loss::Reduction::Mean);
    let opt = Optimizer::new(optimizer, &vs);
    let mut opt = if a.unfused { opt.unfused() } else { opt };
    if a.cuda_graph {
        opt.use_device_counters()?;
        opt.set_lr(0.01);
    }
    // The step on a batch: what a CUDA graph records with --cuda-graph (then the rate of
    // opt.step is the one on the device).
    let mut body = |batch: &Vec<Tensor>| -> calib_train::Result<StepOut> {
        opt.zero_grad();
        let (logits, y) = calib_train::precision::with(precision, device, || -> Result<(Tensor, Tensor)> {
            Ok(match &bench {
                Bench::Image(model) => (model.forward_t(&batch[0], true), batch[1].shallow_clone()),
                Bench::Transformer(model) => {
                    let pad = batch[0].eq(1);
                    let memory = model.encode(&batch[0], &pad, true)?;
                    let logits = model.decode(&batch[1], &memory, &pad, true)?;
                    let v = logits.size()[2];
                    (logits.view([-1, v]), batch[2].shallow_clone())
                }
            })
        })
        .map_err(|e| calib_train::Error::Task(e.to_string()))?;
        let value = loss.forward(&logits.to_kind(Dtype::Float), &y, 0);
        value.backward();
        if let Some(max) = clip {
            let _ = opt.clip_grad_norm(max);
        }
        opt.step(0.01)?;
        let zero = || Tensor::zeros([], (Dtype::Int64, device));
        Ok(StepOut { loss: value.detach(), nll: zero(), wrong: zero(), rows: y.size()[0] as usize })
    };
    let mut graphed = if a.cuda_graph {
        if !device.is_cuda() {
            anyhow::bail!("--cuda-graph needs a CUDA device; this run is on {device:?}");
        }
        Some(GraphedStep::new(Box::new(CudaGraph::new()?)))
    } else {
        None
    };
    let mut step = || -> Result<()> {
        match graphed.as_mut() {
            // The same tensors every step: the copy into the recorded batch is the one a run pays.
            Some(g) => g.step(inputs.iter().map(Tensor::shallow_clone).collect(), &mut body)?,
            None => body(&inputs)?,
        };
        Ok(())
    };
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    // With --cuda-graph the untimed steps include the eager warm-up and the recording.
    let warmup = if a.cuda_graph { a.warmup.max(WARM_UP_STEPS as u64 + 1) } else { a.warmup };
    for _ in 0..warmup {
        step()?;
    }
    sync();
    let start = Instant::now();
    for _ in 0..a.steps {
        step()?;
    }
    sync();
    let seconds = start.elapsed().as_secs_f64();
    let rate = samples as f64 * a.steps as f64 / seconds;
    let unit = if transformer.is_some() { "target tokens" } else { "images" };
    let json = json!({
        "implementation": "calib", "model": a.model, "parameters": params, "device": format!("{device:?}"),
        "precision": if precision == calib_train::precision::Precision::Bf16 { "bf16" } else { "fp32" },
        "samples_per_step": samples, "unit": unit, "steps": a.steps, "warmup": warmup,
        "optimizer": if a.unfused { "reference" } else { "fused" },
        "channels_last": !a.nchw && transformer.is_none(),
        "cuda_graph": a.cuda_graph,
        "threads": tch::get_num_threads(), "step_ms": 1000.0 * seconds / a.steps as f64, "samples_per_second": rate,
    });
    emit(format, &json, || {
        format!(
            "{}: {rate:.1} {unit}/s ({:.1} ms a step, {params} parameters, {device:?})",
            a.model,
            1000.0 * seconds / a.steps as f64
        )
    })
}
