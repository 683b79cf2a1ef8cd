//! The training step recorded once and replayed (`train.cuda_graph`). On a GPU a small model's
//! step is a few hundred short kernels whose launches, not their arithmetic, set the pace; a CUDA
//! graph launches them all at once. The recording fixes every address and every number: the
//! batch is copied into the tensors the step was recorded with, the learning rate and the step
//! count live on the device ([`crate::optim::Optimizer::use_device_counters`]), and a batch of
//! another shape (the epoch's last, shorter one) takes the step without the graph. Only a shape
//! two consecutive batches have shared is recorded, so a short batch never is.
//!
//! [`Recorder`] separates what is recorded from how: [`CudaGraph`] captures with libtorch's
//! `at::cuda::CUDAGraph` through the shim `cpp/cuda_graph.cpp` (built by
//! `scripts/build-cuda-shims.sh`, loaded once CUDA is); the trainer's tests replay by running the
//! step again, which checks on the CPU everything but the capture itself.

use crate::error::{Error, Result};
use crate::task::Batch;
use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

/// Eager steps before the recording (on the side stream, as `torch.cuda.graph`'s examples warm
/// up): libtorch's lazy set-up (cuBLAS handles, autograd's streams, the optimiser's first step,
/// which sets SGD's momentum buffers) happens there and not in the graph.
pub const WARM_UP_STEPS: usize = 3;

/// What a training step hands the epoch's sums, as device tensors.
pub struct StepOut {
    /// The loss summed over the batch's rows (f64).
    pub loss: Tensor,
    /// −log p of the true class summed over the rows (f64).
    pub nll: Tensor,
    /// Rows predicted wrong (i64).
    pub wrong: Tensor,
    pub rows: usize,
}

impl StepOut {
    fn shallow_clone(&self) -> Self {
        Self {
            loss: self.loss.shallow_clone(),
            nll: self.nll.shallow_clone(),
            wrong: self.wrong.shallow_clone(),
            rows: self.rows,
        }
    }
}

/// A step body: one training step on a batch.
pub type Body<'a, B> = dyn FnMut(&B) -> Result<StepOut> + 'a;

/// How a step is recorded and replayed.
pub trait Recorder {
    /// Runs the step eagerly, where a recording would later run (the warm-up, odd-shaped batches).
    fn eager(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut>;
    /// Runs the step and records it.
    fn record(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut>;
    /// Runs the recorded step again; `recorded` are the outputs the recording returned.
    fn replay(&mut self, run: &mut dyn FnMut() -> Result<StepOut>, recorded: &StepOut) -> Result<StepOut>;
}

/// The training step behind a [`Recorder`]: warm-up, one recording per epoch (FLSc's γ and
/// every other number the loss reads are fixed per epoch), replays.
pub struct GraphedStep<B> {
    /// The batch the step was recorded with (its tensors are the graph's inputs), those tensors
    /// listed in order, and the recording's outputs. Declared before the recorder, so that they
    /// are dropped before the graph whose memory pool holds them.
    recorded: Option<(B, Vec<Tensor>, StepOut)>,
    recorder: Box<dyn Recorder>,
    eager_steps: usize,
    /// The shapes of the step before, and the latest shapes two consecutive batches shared
    /// (the epoch's full batches): the only ones recorded.
    previous: Option<Shapes>,
    steady: Option<Shapes>,
}

/// The shape and kind of each of a batch's tensors.
type Shapes = Vec<(Vec<i64>, tch::Kind)>;

impl<B: Batch> GraphedStep<B> {
    pub fn new(recorder: Box<dyn Recorder>) -> Self {
        Self { recorder, eager_steps: 0, recorded: None, previous: None, steady: None }
    }

    /// A new epoch: the next batch of the steady shape is recorded anew.
    pub fn new_epoch(&mut self, recorder: Box<dyn Recorder>) {
        // The recording's tensors first, then the graph whose memory pool holds them.
        self.recorded = None;
        self.recorder = recorder;
    }

    /// One training step on `batch` by `body`.
    pub fn step(&mut self, batch: B, body: &mut Body<'_, B>) -> Result<StepOut> {
        let (batch, given) = listed(batch);
        let now = shapes(&given);
        if self.previous.as_ref() == Some(&now) {
            self.steady = Some(now.clone());
        }
        self.previous = Some(now.clone());
        if self.eager_steps < WARM_UP_STEPS {
            self.eager_steps += 1;
            return self.recorder.eager(&mut || body(&batch));
        }
        match &self.recorded {
            None if self.steady.as_ref() == Some(&now) => {
                let out = self.recorder.record(&mut || body(&batch))?;
                self.recorded = Some((batch, given, out.shallow_clone()));
                Ok(out)
            }
            None => self.recorder.eager(&mut || body(&batch)),
            Some((recorded, inputs, outputs)) => {
                if shapes(inputs) != now {
                    return self.recorder.eager(&mut || body(&batch));
                }
                tch::no_grad(|| {
                    for (to, from) in inputs.iter().zip(&given) {
                        to.shallow_clone().copy_(from);
                    }
                });
                self.recorder.replay(&mut || body(recorded), outputs)
            }
        }
    }
}

/// The batch and its tensors (shallow clones) in the order `map_tensors` visits them.
fn listed<B: Batch>(batch: B) -> (B, Vec<Tensor>) {
    let mut list = Vec::new();
    let batch = batch.map_tensors(&mut |t| {
        list.push(t.shallow_clone());
        t
    });
    (batch, list)
}

fn shapes(tensors: &[Tensor]) -> Shapes {
    tensors.iter().map(|t| (t.size(), t.kind())).collect()
}

/// A CUDA graph of the step (see the module's doc).
pub struct CudaGraph {
    api: &'static Api,
    handle: *mut c_void,
}

type Call = unsafe extern "C" fn(*mut c_void, *mut *mut c_char) -> c_int;

struct Api {
    new: unsafe extern "C" fn(*mut *mut c_void, *mut *mut c_char) -> c_int,
    enter: Call,
    leave: Call,
    capture_begin: Call,
    capture_end: Call,
    replay: Call,
    free: unsafe extern "C" fn(*mut c_void),
    free_error: unsafe extern "C" fn(*mut c_char),
}

/// Where the shim is looked for: `CALIB_CUDA_GRAPH_SHIM`, else beside the executable.
fn shim_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CALIB_CUDA_GRAPH_SHIM") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().unwrap_or(Path::new(".")).join("libcalib_cudagraph.so")
}

fn api() -> Result<&'static Api> {
    static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    let path = shim_path();
    API.get_or_init(|| load(&path)).as_ref().map_err(|problem| cannot_load(&path, problem))
}

fn cannot_load(path: &Path, problem: &str) -> Error {
    Error::Device(format!(
        "train.cuda_graph: cannot load {}: {problem} (build it with scripts/build-cuda-shims.sh, or set CALIB_CUDA_GRAPH_SHIM)",
        path.display()
    ))
}

fn load(path: &Path) -> std::result::Result<Api, String> {
    // SAFETY: the library's initialisers are libtorch's and the shim's static objects.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // The functions live as long as the process: the library is never unloaded.
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // SAFETY: each symbol is declared in cpp/cuda_graph.cpp with exactly these signatures.
    unsafe {
        let sym = |name: &[u8]| lib.get::<Call>(name).map(|s| *s).map_err(|e| e.to_string());
        Ok(Api {
            new: *lib.get(b"calib_graph_new").map_err(|e| e.to_string())?,
            enter: sym(b"calib_graph_enter")?,
            leave: sym(b"calib_graph_leave")?,
            capture_begin: sym(b"calib_graph_capture_begin")?,
            capture_end: sym(b"calib_graph_capture_end")?,
            replay: sym(b"calib_graph_replay")?,
            free: *lib.get(b"calib_graph_free").map_err(|e| e.to_string())?,
            free_error: *lib.get(b"calib_graph_free_error").map_err(|e| e.to_string())?,
        })
    }
}

impl CudaGraph {
    /// An empty graph; the shim is loaded on first use.
    pub fn new() -> Result<Self> {
        let api = api()?;
        let mut handle = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        // SAFETY: the shim's constructor writes the handle or the error.
        let status = unsafe { (api.new)(&mut handle, &mut err) };
        Self::check(api, status, err, "create")?;
        Ok(Self { api, handle })
    }

    fn check(api: &Api, status: c_int, err: *mut c_char, what: &str) -> Result<()> {
        // SAFETY: `err` is what the shim just set (or null), freed by its own function.
        unsafe { crate::shim::take_error(status, err, api.free_error) }
            .map_err(|e| Error::Device(format!("train.cuda_graph: cannot {what} the step's graph: {e}")))
    }

    fn call(&mut self, f: Call, what: &str) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: `handle` is this graph's live handle.
        let status = unsafe { f(self.handle, &mut err) };
        Self::check(self.api, status, err, what)
    }

    /// `run` on the side stream; the caller's stream waits for it.
    fn on_side_stream<T>(&mut self, run: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.call(self.api.enter, "enter the side stream of")?;
        let out = run(self);
        let left = self.call(self.api.leave, "leave the side stream of");
        let out = out?;
        left?;
        Ok(out)
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: the handle came from the shim's constructor and is freed once.
        unsafe { (self.api.free)(self.handle) }
    }
}

impl Recorder for CudaGraph {
    fn eager(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut> {
        self.on_side_stream(|_| run())
    }

    fn record(&mut self, run: &mut dyn FnMut() -> Result<StepOut>) -> Result<StepOut> {
        let out = self.on_side_stream(|g| {
            g.call(g.api.capture_begin, "begin capturing")?;
            let out = run();
            let ended = g.call(g.api.capture_end, "end capturing");
            let out = out?;
            ended?;
            Ok(out)
        })?;
        // Capturing runs nothing: this replay is the step itself.
        self.call(self.api.replay, "replay")?;
        Ok(out)
    }

    fn replay(&mut self, _run: &mut dyn FnMut() -> Result<StepOut>, recorded: &StepOut) -> Result<StepOut> {
        self.call(self.api.replay, "replay")?;
        Ok(recorded.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_shim_is_a_clear_error() {
        let path = Path::new("/nonexistent/libcalib_cudagraph.so");
        let problem = load(path).err().expect("no shim there");
        let e = cannot_load(path, &problem).to_string();
        assert!(e.contains("/nonexistent/libcalib_cudagraph.so: ") && e.contains("No such file"), "{e}");
        assert!(e.ends_with("(build it with scripts/build-cuda-shims.sh, or set CALIB_CUDA_GRAPH_SHIM)"), "{e}");
        assert_eq!(shim_path().file_name().unwrap(), "libcalib_cudagraph.so");
    }
}
