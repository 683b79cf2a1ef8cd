//! Weight initialisation as the reference implementations write it, so that a network of ours
//! starts where the PyTorch, Keras or fairseq network it reproduces starts.
//!
//! tch's own defaults are not PyTorch's: its convolutions and linear layers draw Kaiming-uniform
//! weights with the ReLU gain (a standard deviation √6 ≈ 2.45× PyTorch's) and its batch norms draw
//! their scale from U(0, 1) (PyTorch: 1). Those differences change how fast a network learns and
//! how confident it ends, which is what this toolkit measures, so every network builds its layers
//! here with the rule of the code it reproduces:
//!
//! | rule | weight | bias |
//! | --- | --- | --- |
//! | [`Weight::Torch`] | PyTorch's `reset_parameters`: `kaiming_uniform_(a=√5)`, U(±1/√fan_in) | U(±1/√fan_in) ([`Bias::Torch`]) |
//! | [`Weight::Xavier`] | Glorot-uniform, U(±gain·√(6/(fan_in+fan_out))) | Keras and fairseq: 0 |
//! | [`Weight::KaimingNormalFanOut`] | N(0, 2/fan_out), the official Wide-ResNet's hand rule | — |
//!
//! Fans follow PyTorch's `_calculate_fan_in_and_fan_out`: a weight `[out, in, k…]` has
//! fan_in = in·∏k and fan_out = out·∏k.

use tch::nn::{self, Init, Path};

/// How a weight matrix or kernel starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weight {
    /// PyTorch's default for `nn.Linear` and `nn.ConvNd`: U(±1/√fan_in) (its
    /// `kaiming_uniform_(a=√5)`, standard deviation 1/√(3·fan_in)).
    Torch,
    /// Glorot/Xavier-uniform with this gain (Keras' default kernel initialiser, fairseq's
    /// attention projections).
    Xavier { gain: f64 },
    /// N(0, √(2/fan_out)): `normal_(0, sqrt(2 / (k·k·out)))`, as the official Wide-ResNet
    /// initialises its convolutions (Kaiming-normal, fan-out mode, ReLU gain).
    KaimingNormalFanOut,
}

/// How a bias starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    /// No bias.
    None,
    /// Zero (Keras; fairseq's attention output projection; the official Wide-ResNet's linear).
    Zero,
    /// U(±1/√fan_in), PyTorch's default for `nn.Linear` and `nn.ConvNd`.
    Torch,
}

/// PyTorch's fans of a weight of shape `[out, in, k…]`: (in·∏k, out·∏k).
pub fn fans(shape: &[i64]) -> (i64, i64) {
    let receptive: i64 = shape.iter().skip(2).product();
    (shape.get(1).copied().unwrap_or(1) * receptive, shape[0] * receptive)
}

/// The distribution a weight of `shape` starts from under `rule`.
pub fn weight_init(rule: Weight, shape: &[i64]) -> Init {
    let (fan_in, fan_out) = fans(shape);
    match rule {
        Weight::Torch => uniform(1.0 / (fan_in as f64).sqrt()),
        Weight::Xavier { gain } => uniform(gain * (6.0 / (fan_in + fan_out) as f64).sqrt()),
        Weight::KaimingNormalFanOut => Init::Randn { mean: 0.0, stdev: (2.0 / fan_out as f64).sqrt() },
    }
}

/// The distribution a bias of a layer whose weight has `fan_in` starts from (`None` for
/// [`Bias::None`]).
pub fn bias_init(rule: Bias, fan_in: i64) -> Option<Init> {
    match rule {
        Bias::None => None,
        Bias::Zero => Some(Init::Const(0.0)),
        Bias::Torch => Some(uniform(1.0 / (fan_in as f64).sqrt())),
    }
}

fn uniform(bound: f64) -> Init {
    Init::Uniform { lo: -bound, up: bound }
}

/// A linear layer `inputs → outputs` (weight `[outputs, inputs]`).
pub fn linear(p: Path, inputs: i64, outputs: i64, weight: Weight, bias: Bias) -> nn::Linear {
    let ws = p.var("weight", &[outputs, inputs], weight_init(weight, &[outputs, inputs]));
    let bs = bias_init(bias, inputs).map(|init| p.var("bias", &[outputs], init));
    nn::Linear { ws, bs }
}

/// PyTorch's `nn.Linear(inputs, outputs)` as constructed.
pub fn torch_linear(p: Path, inputs: i64, outputs: i64) -> nn::Linear {
    linear(p, inputs, outputs, Weight::Torch, Bias::Torch)
}

/// A convolution's initialisers for a weight of `shape`, stride 1 and no padding.
fn conv_config(shape: &[i64], weight: Weight, bias: Bias) -> nn::ConvConfig {
    nn::ConvConfig {
        bias: bias != Bias::None,
        ws_init: weight_init(weight, shape),
        bs_init: bias_init(bias, fans(shape).0).unwrap_or(Init::Const(0.0)),
        ..Default::default()
    }
}

/// A 2-d convolution `inputs → outputs` with a square `kernel`, `stride` and `padding`.
pub fn conv2d(
    p: Path,
    (inputs, outputs, kernel): (i64, i64, i64),
    (stride, padding): (i64, i64),
    weight: Weight,
    bias: Bias,
) -> nn::Conv2D {
    let config = conv_config(&[outputs, inputs, kernel, kernel], weight, bias);
    nn::conv2d(p, inputs, outputs, kernel, nn::ConvConfig { stride, padding, ..config })
}

/// A 1-d convolution `inputs → outputs` of width `kernel`, stride 1, no padding.
pub fn conv1d(p: Path, (inputs, outputs, kernel): (i64, i64, i64), weight: Weight, bias: Bias) -> nn::Conv1D {
    nn::conv1d(p, inputs, outputs, kernel, conv_config(&[outputs, inputs, kernel], weight, bias))
}

/// PyTorch's `nn.BatchNorm2d(channels)`: scale 1, shift 0, running mean 0 and variance 1.
pub fn batch_norm2d(p: Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig { ws_init: Init::Const(1.0), bs_init: Init::Const(0.0), ..Default::default() };
    nn::batch_norm2d(p, channels, config)
}

/// An embedding table `[rows, dim]` drawn from N(0, dim^−½) with the row `padding` zeroed, as
/// fairseq's `Embedding` builds it (the padding row's gradient is kept at zero by the lookup).
pub fn embedding(p: &Path, name: &str, (rows, dim): (i64, i64), padding: Option<i64>) -> tch::Tensor {
    let table = p.var(name, &[rows, dim], Init::Randn { mean: 0.0, stdev: (dim as f64).powf(-0.5) });
    if let Some(pad) = padding {
        tch::no_grad(|| {
            let _ = table.get(pad).fill_(0.0);
        });
    }
    table
}

/// The weight of `p` named `name` as given (a pre-trained embedding), trainable or frozen; a
/// frozen one is still saved with the checkpoint.
pub fn pretrained(p: &Path, name: &str, values: &tch::Tensor, trainable: bool) -> tch::Tensor {
    if trainable {
        return p.var_copy(name, values);
    }
    let var = p.zeros_no_train(name, &values.size());
    tch::no_grad(|| var.shallow_clone().copy_(values));
    var
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn stats(t: &Tensor) -> (f64, f64, f64) {
        let t = t.to_kind(Kind::Double);
        (t.mean(Kind::Double).double_value(&[]), t.std(true).double_value(&[]), t.abs().max().double_value(&[]))
    }

    /// Mean 0, standard deviation `std` within 2 %, and every value within `bound` (when
    /// uniform).
    fn assert_dist(t: &Tensor, std: f64, bound: Option<f64>, what: &str) {
        let (m, s, max) = stats(t);
        assert!(m.abs() < 0.02 * std, "{what}: mean {m}");
        assert!((s / std - 1.0).abs() < 0.02, "{what}: std {s} vs {std}");
        if let Some(b) = bound {
            assert!(max <= b * (1.0 + 1e-6) && max > 0.99 * b, "{what}: max {max} vs bound {b}");
        }
    }

    #[test]
    fn fans_are_pytorchs() {
        assert_eq!(fans(&[64, 32, 3, 3]), (288, 576));
        assert_eq!(fans(&[10, 512]), (512, 10));
        assert_eq!(fans(&[100, 50, 5]), (250, 500));
    }

    /// Every rule against the formula it writes out, on layers large enough for the sample
    /// statistics to be within 2 %.
    #[test]
    fn layers_start_from_their_reference_distributions() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let sqrt3 = 3f64.sqrt();

        // PyTorch nn.Linear(600, 400): weight and bias U(±1/√600).
        let l = torch_linear(&root / "lin", 600, 400);
        let b = 1.0 / 600f64.sqrt();
        assert_dist(&l.ws, b / sqrt3, Some(b), "torch linear weight");
        let (_, _, bmax) = stats(l.bs.as_ref().unwrap());
        assert!(bmax <= b * (1.0 + 1e-6) && bmax > 0.95 * b, "torch linear bias max {bmax}");

        // PyTorch nn.Conv2d(64, 128, 3) without bias: U(±1/√(64·9)).
        let c = conv2d(&root / "conv", (64, 128, 3), (1, 1), Weight::Torch, Bias::None);
        let b = 1.0 / 576f64.sqrt();
        assert_dist(&c.ws, b / sqrt3, Some(b), "torch conv weight");
        assert!(c.bs.is_none());

        // Wide-ResNet: N(0, 2/(3·3·160)).
        let w = conv2d(&root / "wrn", (160, 160, 3), (1, 1), Weight::KaimingNormalFanOut, Bias::None);
        assert_dist(&w.ws, (2.0 / 1440f64).sqrt(), None, "kaiming normal fan-out");

        // Xavier with fairseq's 1/√2 gain on a 512×512 projection, zero bias.
        let x = linear(&root / "q", 512, 512, Weight::Xavier { gain: 0.5f64.sqrt() }, Bias::Zero);
        let b = 0.5f64.sqrt() * (6.0 / 1024f64).sqrt();
        assert_dist(&x.ws, b / sqrt3, Some(b), "xavier 1/√2");
        assert_eq!(x.bs.as_ref().unwrap().abs().max().double_value(&[]), 0.0);

        // Keras Conv1D(filters 128, width 5) on 300 channels: Xavier over both fans.
        let k = conv1d(&root / "k", (300, 128, 5), Weight::Xavier { gain: 1.0 }, Bias::Zero);
        let b = (6.0 / (1500.0 + 640.0f64)).sqrt();
        assert_dist(&k.ws, b / sqrt3, Some(b), "keras conv1d");

        // BatchNorm: exactly 1 and 0, running statistics 0 and 1.
        let bn = batch_norm2d(&root / "bn", 256);
        assert_eq!(bn.ws.as_ref().unwrap().min().double_value(&[]), 1.0);
        assert_eq!(bn.ws.as_ref().unwrap().max().double_value(&[]), 1.0);
        assert_eq!(bn.bs.as_ref().unwrap().abs().max().double_value(&[]), 0.0);
        assert_eq!(bn.running_var.min().double_value(&[]), 1.0);

        // fairseq's embedding: N(0, 1/√512), padding row zero.
        let e = embedding(&root, "embed", (1000, 512), Some(1));
        assert_eq!(e.get(1).abs().max().double_value(&[]), 0.0);
        assert_dist(&e.narrow(0, 2, 998), 512f64.powf(-0.5), None, "embedding");
    }
}
