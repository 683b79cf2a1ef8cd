//! The channels-last (NHWC) layout of convolutional networks. libtorch picks a convolution's
//! kernels by its operands' layout: cuDNN's tensor-core kernels and oneDNN's CPU kernels work in
//! NHWC, so a network whose weights and inputs are channels-last skips the layout conversions that
//! NCHW operands cost around every convolution. A channels-last tensor keeps its NCHW shape and
//! indexing; only its strides differ, so nothing else in the toolkit needs to know. tch has no
//! memory-format API, so the layout is made from a permutation: NCHW viewed as NHWC, made
//! contiguous, viewed back.

use tch::nn::VarStore;
use tch::Tensor;

/// The same values in the channels-last layout; tensors that are not 4-D are returned as they are
/// (shallow clones).
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 || is_channels_last(t) {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D tensor is laid out channels-last (strides C·W·H, 1, W·C, C).
pub fn is_channels_last(t: &Tensor) -> bool {
    if t.dim() != 4 {
        return false;
    }
    let (s, st) = (t.size(), t.stride());
    let (c, h, w) = (s[1], s[2], s[3]);
    st[1] == 1 && st[3] == c && st[2] == w * c && st[0] == h * w * c
}

/// Lays every 4-D variable of `vs` (the convolution weights) out channels-last, in place, so
/// their gradients and the optimiser state made from them follow. Call it before the optimiser is
/// built; checkpoints still store the usual NCHW order (see [`crate::checkpoint::save_tensors`]).
pub fn to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 && !is_channels_last(&v) {
                let nhwc = channels_last(&v);
                v.set_data(&nhwc);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_layout_changes_and_the_values_do_not() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        assert!(!is_channels_last(&x));
        let y = channels_last(&x);
        assert_eq!(y.size(), x.size());
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        assert!(is_channels_last(&y));
        assert!(y.equal(&x));
        // Already channels-last, or not 4-D: unchanged.
        assert_eq!(channels_last(&y).stride(), y.stride());
        assert_eq!(channels_last(&x.view([2, 60])).stride(), vec![60, 1]);
    }

    /// A convolution on channels-last operands gives what the NCHW one gives, in the
    /// channels-last layout, and so does the weight's gradient.
    #[test]
    fn a_channels_last_convolution_equals_the_nchw_one() {
        let x = Tensor::randn([2, 3, 6, 6], (Kind::Float, Device::Cpu));
        let w0 = Tensor::randn([8, 3, 3, 3], (Kind::Float, Device::Cpu));
        let run = |nhwc: bool| {
            let vs = VarStore::new(Device::Cpu);
            let config = tch::nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
            let conv = tch::nn::conv2d(vs.root(), 3, 8, 3, config);
            // The same weights on both sides, whatever other tests draw from libtorch's generator.
            tch::no_grad(|| conv.ws.shallow_clone().copy_(&w0));
            if nhwc {
                to_channels_last(&vs);
                assert!(is_channels_last(&conv.ws));
            }
            let y = if nhwc { channels_last(&x) } else { x.shallow_clone() }.apply(&conv);
            y.sum(Kind::Float).backward();
            (y, conv.ws.grad())
        };
        let (want, want_grad) = run(false);
        let (got, got_grad) = run(true);
        assert!(is_channels_last(&got) && is_channels_last(&got_grad));
        assert!(got.allclose(&want, 1e-5, 1e-5, false));
        assert!(got_grad.allclose(&want_grad, 1e-5, 1e-5, false));
    }

    /// Checkpoints hold the values, whatever the layout.
    #[test]
    fn a_channels_last_tensor_is_saved_in_nchw_order() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        crate::checkpoint::save_tensors(&path, &[("w".into(), channels_last(&x))]).unwrap();
        let back = crate::checkpoint::load_tensors(&path).unwrap().remove("w").unwrap();
        assert!(back.equal(&x));
    }
}
