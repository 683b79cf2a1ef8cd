//! The initialisers of the reference code written out: Glorot/Xavier-uniform matrices (Keras'
//! default kernel initialiser, and what the reference Tree-LSTM applies to every matrix) and
//! PyTorch's default `nn.Linear` bias, U(±1/√fan_in).

use tch::nn::{self, Init, Path};
use tch::Tensor;

/// Xavier-uniform bound for a weight whose fan-in and fan-out are given (a Conv1d's include the
/// kernel width): √(6 / (fan_in + fan_out)).
pub fn xavier_bound(fan_in: i64, fan_out: i64) -> f64 {
    (6.0 / (fan_in + fan_out) as f64).sqrt()
}

fn uniform(bound: f64) -> Init {
    Init::Uniform { lo: -bound, up: bound }
}

/// A linear layer `[out, in]` with a Xavier-uniform weight and a bias that is zero (Keras) or
/// PyTorch's default (`torch_bias`); `bias = false` has none.
pub fn linear(p: Path, inputs: i64, outputs: i64, bias: Option<Bias>) -> nn::Linear {
    let ws = p.var("weight", &[outputs, inputs], uniform(xavier_bound(inputs, outputs)));
    let bs = bias.map(|b| match b {
        Bias::Zero => p.var("bias", &[outputs], Init::Const(0.0)),
        Bias::Torch => p.var("bias", &[outputs], uniform(1.0 / (inputs as f64).sqrt())),
    });
    nn::Linear { ws, bs }
}

/// How a layer's bias starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    /// Zero (Keras' default).
    Zero,
    /// U(±1/√fan_in) (PyTorch's `nn.Linear` default).
    Torch,
}

/// The weight of `p` named `name` as given (a pre-trained embedding), trainable or frozen; a
/// frozen one is still saved with the checkpoint.
pub fn pretrained(p: &Path, name: &str, values: &Tensor, trainable: bool) -> Tensor {
    if trainable {
        return p.var_copy(name, values);
    }
    let var = p.zeros_no_train(name, &values.size());
    tch::no_grad(|| var.shallow_clone().copy_(values));
    var
}
