//! libtorch's fused optimiser kernels (`torch.optim`'s `fused=True`) through the C++ shim
//! `cpp/fused.cpp`: one kernel per parameter on CPU and multi-tensor kernels on CUDA, where the
//! reference update in [`crate::optim`] runs a chain of element-wise operations with temporaries.

use std::ffi::{c_char, c_int, c_void};
use tch::Tensor;

extern "C" {
    fn calib_fused_sgd(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        bufs: *const *mut c_void,
        n: usize,
        lr: f64,
        lr_tensor: *mut c_void,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: c_int,
        first_step: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn calib_fused_adam(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        m: *const *mut c_void,
        v: *const *mut c_void,
        n: usize,
        step: *mut c_void,
        lr: f64,
        lr_tensor: *mut c_void,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        err: *mut *mut c_char,
    ) -> c_int;
    fn calib_fused_adagrad(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        sums: *const *mut c_void,
        n: usize,
        step: *mut c_void,
        lr: f64,
        weight_decay: f64,
        eps: f64,
        err: *mut *mut c_char,
    ) -> c_int;
    fn calib_fused_free_error(err: *mut c_char);
}

/// A learning rate: a number, or a float32 scalar on the parameters' device, which a CUDA graph
/// reads anew at every replay (a number would be recorded into it).
pub(crate) enum Rate {
    Value(f64),
    Tensor(Tensor),
}

impl Rate {
    fn split(&mut self) -> (f64, *mut c_void) {
        match self {
            Rate::Value(v) => (*v, std::ptr::null_mut()),
            Rate::Tensor(t) => (0.0, t.as_mut_ptr() as *mut c_void),
        }
    }
}

/// The parameters of one call: values, gradients and the optimiser's buffers, index for index.
pub(crate) struct Lists {
    pub params: Vec<Tensor>,
    pub grads: Vec<Tensor>,
    pub a: Vec<Tensor>,
    pub b: Vec<Tensor>,
}

fn pointers(ts: &mut [Tensor]) -> Vec<*mut c_void> {
    ts.iter_mut().map(|t| t.as_mut_ptr() as *mut c_void).collect()
}

fn check(status: c_int, err: *mut c_char) -> Result<(), String> {
    // SAFETY: `err` is what the shim just set (or null), freed by the shim's own function.
    unsafe { crate::shim::take_error(status, err, calib_fused_free_error) }
}

/// SGD with momentum buffers `a` (set to the first step's direction when `first_step`).
pub(crate) fn sgd(
    l: &mut Lists,
    mut lr: Rate,
    (momentum, dampening, weight_decay, nesterov): (f64, f64, f64, bool),
    first_step: bool,
) -> Result<(), String> {
    let (p, g, a) = (pointers(&mut l.params), pointers(&mut l.grads), pointers(&mut l.a));
    let (lr, lr_tensor) = lr.split();
    let mut err = std::ptr::null_mut();
    // SAFETY: every pointer is a live at::Tensor of these lists, n of each (a may be empty
    // without momentum, where the shim ignores it); lr_tensor is null or a live tensor.
    let status = unsafe {
        calib_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            a.as_ptr(),
            p.len(),
            lr,
            lr_tensor,
            momentum,
            dampening,
            weight_decay,
            c_int::from(nesterov),
            c_int::from(first_step),
            &mut err,
        )
    };
    check(status, err)
}

/// Adam with moments `a` and `b` at `step` (a float32 scalar on the parameters' device).
pub(crate) fn adam(
    l: &mut Lists,
    step: &mut Tensor,
    mut lr: Rate,
    (beta1, beta2, eps, weight_decay): (f64, f64, f64, f64),
) -> Result<(), String> {
    let (p, g, a, b) = (pointers(&mut l.params), pointers(&mut l.grads), pointers(&mut l.a), pointers(&mut l.b));
    let (lr, lr_tensor) = lr.split();
    let mut err = std::ptr::null_mut();
    // SAFETY: as in `sgd`; `step` is a live tensor.
    let status = unsafe {
        calib_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            a.as_ptr(),
            b.as_ptr(),
            p.len(),
            step.as_mut_ptr() as *mut c_void,
            lr,
            lr_tensor,
            beta1,
            beta2,
            weight_decay,
            eps,
            &mut err,
        )
    };
    check(status, err)
}

/// AdaGrad with sums of squares `a` at `step` (CPU kernels only).
pub(crate) fn adagrad(
    l: &mut Lists,
    step: &mut Tensor,
    lr: f64,
    (eps, weight_decay): (f64, f64),
) -> Result<(), String> {
    let (p, g, a) = (pointers(&mut l.params), pointers(&mut l.grads), pointers(&mut l.a));
    let mut err = std::ptr::null_mut();
    // SAFETY: as in `adam`.
    let status = unsafe {
        calib_fused_adagrad(
            p.as_ptr(),
            g.as_ptr(),
            a.as_ptr(),
            p.len(),
            step.as_mut_ptr() as *mut c_void,
            lr,
            weight_decay,
            eps,
            &mut err,
        )
    };
    check(status, err)
}
