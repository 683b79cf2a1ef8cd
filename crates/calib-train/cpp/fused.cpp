// libtorch's fused optimiser kernels (what torch.optim's `fused=True` calls), which tch does not
// expose: one kernel per parameter on CPU, multi-tensor kernels on CUDA, instead of a chain of
// element-wise operations and temporaries per parameter. Tensors arrive as tch's pointers
// (at::Tensor*). Errors follow guarded.hpp (messages freed with calib_fused_free_error).

#include <ATen/ATen.h>
#include <ATen/Functions.h>

#include "guarded.hpp"

#include <cstdlib>
#include <vector>

namespace {

std::vector<at::Tensor> tensors(void* const* ptrs, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*static_cast<at::Tensor*>(ptrs[i]));
  }
  return out;
}

}  // namespace

extern "C" {

// torch.optim.SGD(fused=True) on n parameters; `bufs` is ignored without momentum, and on the
// first step the kernel sets each buffer to the gradient (with weight decay), as SGD does. The rate
// is `lr`, or the float32 scalar tensor `lr_tensor` on the parameters' device when it is not null
// (what a CUDA graph replays with a rate that changes).
int calib_fused_sgd(void* const* params, void* const* grads, void* const* bufs, size_t n, double lr,
                    void* lr_tensor, double momentum, double dampening, double weight_decay, int nesterov,
                    int first_step, char** err) {
  return calib::guarded(err, [&] {
    auto b = momentum == 0.0 ? std::vector<at::Tensor>{} : tensors(bufs, n);
    if (lr_tensor != nullptr) {
      at::_fused_sgd_(tensors(params, n), tensors(grads, n), b, weight_decay, momentum,
                      *static_cast<at::Tensor*>(lr_tensor), dampening, nesterov != 0, false, first_step != 0);
    } else {
      at::_fused_sgd_(tensors(params, n), tensors(grads, n), b, weight_decay, momentum, lr, dampening, nesterov != 0,
                      false, first_step != 0);
    }
  });
}

// torch.optim.Adam(fused=True) on n parameters at step `step` (a float32 scalar tensor on their
// device, already counting this step), moments `m` and `v`; the rate as in calib_fused_sgd.
int calib_fused_adam(void* const* params, void* const* grads, void* const* m, void* const* v, size_t n, void* step,
                     double lr, void* lr_tensor, double beta1, double beta2, double weight_decay, double eps,
                     char** err) {
  return calib::guarded(err, [&] {
    std::vector<at::Tensor> steps(n, *static_cast<at::Tensor*>(step));
    if (lr_tensor != nullptr) {
      at::_fused_adam_(tensors(params, n), tensors(grads, n), tensors(m, n), tensors(v, n), {}, steps,
                       *static_cast<at::Tensor*>(lr_tensor), beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(tensors(params, n), tensors(grads, n), tensors(m, n), tensors(v, n), {}, steps, lr, beta1,
                       beta2, weight_decay, eps, false, false);
    }
  });
}

// torch.optim.Adagrad(fused=True) (CPU kernels only) on n parameters with sums of squares `sums`.
int calib_fused_adagrad(void* const* params, void* const* grads, void* const* sums, size_t n, void* step, double lr,
                        double weight_decay, double eps, char** err) {
  return calib::guarded(err, [&] {
    std::vector<at::Tensor> steps(n, *static_cast<at::Tensor*>(step));
    at::_fused_adagrad_(tensors(params, n), tensors(grads, n), tensors(sums, n), steps, lr, 0.0, weight_decay, eps,
                        false);
  });
}

void calib_fused_free_error(char* err) { std::free(err); }

}  // extern "C"
