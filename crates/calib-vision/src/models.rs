//! The paper's image networks (CIFAR variants, 32 × 32 inputs) and a small one for CPU runs.
//!
//! Two ResNet-110s, as the issue asks: `resnet110` is He et al.'s CIFAR network (basic blocks
//! [18, 18, 18], widths 16/32/64, parameter-free "option A" shortcuts, 1.73 M parameters; its
//! shallower siblings `resnet20`, `resnet32`, `resnet44` and `resnet56` have 3, 5, 7 and 9 blocks
//! per stage and train on a CPU);
//! `resnet110-official` is what the paper's code calls ResNet-110 (bottleneck blocks
//! [3, 4, 26, 3] on the ImageNet-style 64…512 widths, 45.9 M parameters). Parameter counts are
//! tested against the PyTorch definitions.
//!
//! Every network starts as the official code's does ([`calib_train::init`]): PyTorch's default
//! rules for every layer of the ResNets and the DenseNet (convolutions and linear layers
//! U(±1/√fan_in), batch norms 1 and 0), and the official Wide-ResNet's hand rule for its
//! convolutions (N(0, 2/fan_out)), its linear layer keeping PyTorch's default. He et al.'s
//! ResNet-110 and the small network, which the official code does not have, take PyTorch's
//! defaults too.

pub use calib_train::classifier::Classifier;
use calib_train::init::{self, Bias, Weight};
use std::str::FromStr;
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    SmallCnn,
    ResNet18,
    ResNet50,
    /// He et al.'s CIFAR ResNet of depth 6n + 2: `n` basic blocks per stage.
    CifarResNet(usize),
    ResNet110Official,
    Wrn26x10,
    DenseNet121,
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "small-cnn" => Self::SmallCnn,
            "resnet18" => Self::ResNet18,
            "resnet50" => Self::ResNet50,
            "resnet20" => Self::CifarResNet(3),
            "resnet32" => Self::CifarResNet(5),
            "resnet44" => Self::CifarResNet(7),
            "resnet56" => Self::CifarResNet(9),
            "resnet110" => Self::CifarResNet(18),
            "resnet110-official" => Self::ResNet110Official,
            "wrn-26-10" => Self::Wrn26x10,
            "densenet121" => Self::DenseNet121,
            _ => {
                return Err(format!(
                    "unknown model '{s}' (expected small-cnn, resnet18, resnet20, resnet32, resnet44, resnet56, resnet50, resnet110, resnet110-official, wrn-26-10, densenet121)"
                ))
            }
        })
    }
}

/// `forward_t` = the head applied to the features, for every network of this module.
macro_rules! classifier {
    ($($t:ty),*) => {$(
        impl ModuleT for $t {
            fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
                self.features_t(x, train).apply(self.head())
            }
        }
    )*};
}
classifier!(ResNet, CifarResNet, DenseNet, SmallCnn);

/// Builds `arch` for `classes` outputs under `p`.
pub fn build(arch: Arch, p: &nn::Path, classes: i64) -> Box<dyn Classifier> {
    match arch {
        Arch::SmallCnn => Box::new(SmallCnn::new(p, classes)),
        Arch::ResNet18 => Box::new(ResNet::new(p, Block::Basic, &[2, 2, 2, 2], classes)),
        Arch::ResNet50 => Box::new(ResNet::new(p, Block::Bottleneck, &[3, 4, 6, 3], classes)),
        Arch::ResNet110Official => Box::new(ResNet::new(p, Block::Bottleneck, &[3, 4, 26, 3], classes)),
        Arch::CifarResNet(n) => Box::new(CifarResNet::new(p, n, classes)),
        Arch::Wrn26x10 => Box::new(ResNet::wide(p, 26, 10, classes)),
        Arch::DenseNet121 => Box::new(DenseNet::new(p, &[6, 12, 24, 16], 32, classes)),
    }
}

/// A `k`×`k` convolution without bias, padded to keep the size at stride 1.
fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64, weight: Weight) -> nn::Conv2D {
    init::conv2d(p, (i, o, k), (stride, k / 2), weight, Bias::None)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    init::batch_norm2d(p, c)
}

/// conv → batch norm.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: &nn::Path, i: i64, o: i64, k: i64, stride: i64, weight: Weight) -> Self {
        Self { conv: conv(p / "conv", i, o, k, stride, weight), bn: bn(p / "bn", o) }
    }
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.conv).apply_t(&self.bn, train)
    }
}

#[derive(Debug, Clone, Copy)]
enum Block {
    Basic,
    Bottleneck,
}

/// A residual block: basic (two 3×3) or bottleneck (1×1, 3×3, 1×1 ×4), projection shortcut when
/// the shape changes.
#[derive(Debug)]
struct Residual {
    layers: Vec<ConvBn>,
    shortcut: Option<ConvBn>,
}

impl Residual {
    fn new(p: &nn::Path, block: Block, i: i64, planes: i64, stride: i64, w: Weight) -> (Self, i64) {
        let (layers, out) = match block {
            Block::Basic => (
                vec![
                    ConvBn::new(&(p / "a"), i, planes, 3, stride, w),
                    ConvBn::new(&(p / "b"), planes, planes, 3, 1, w),
                ],
                planes,
            ),
            Block::Bottleneck => (
                vec![
                    ConvBn::new(&(p / "a"), i, planes, 1, 1, w),
                    ConvBn::new(&(p / "b"), planes, planes, 3, stride, w),
                    ConvBn::new(&(p / "c"), planes, 4 * planes, 1, 1, w),
                ],
                4 * planes,
            ),
        };
        let shortcut = (stride != 1 || i != out).then(|| ConvBn::new(&(p / "shortcut"), i, out, 1, stride, w));
        (Self { layers, shortcut }, out)
    }
}

impl ModuleT for Residual {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut y = x.shallow_clone();
        for (j, l) in self.layers.iter().enumerate() {
            y = l.forward_t(&y, train);
            if j < last {
                y = y.relu();
            }
        }
        let s = match &self.shortcut {
            Some(sc) => sc.forward_t(x, train),
            None => x.shallow_clone(),
        };
        (y + s).relu()
    }
}

/// The ImageNet-style ResNet adapted to CIFAR (3×3 stem, no max-pool), as in the paper's code.
#[derive(Debug)]
struct ResNet {
    stem: ConvBn,
    blocks: Vec<Residual>,
    fc: nn::Linear,
}

impl ResNet {
    fn new(p: &nn::Path, block: Block, counts: &[usize], classes: i64) -> Self {
        Self::build(p, block, (64, &[64, 128, 256, 512]), counts, classes, Weight::Torch)
    }

    /// Wide ResNet for CIFAR as in the paper's code: depth 6n+2, widths 16k/32k/64k on a 16-channel
    /// stem, post-activation basic blocks with projection shortcuts, convolutions drawn from
    /// N(0, 2/fan_out) as its hand initialisation does.
    fn wide(p: &nn::Path, depth: usize, k: i64, classes: i64) -> Self {
        let n = (depth - 2) / 6;
        let widths = [16 * k, 32 * k, 64 * k];
        Self::build(p, Block::Basic, (16, &widths), &[n, n, n], classes, Weight::KaimingNormalFanOut)
    }

    /// A 3×3 stem of `stem` channels, then stages of `counts` blocks of the given widths, the
    /// first block of every stage after the first with stride 2; convolutions drawn by `w`.
    fn build(
        p: &nn::Path,
        block: Block,
        (stem, widths): (i64, &[i64]),
        counts: &[usize],
        classes: i64,
        w: Weight,
    ) -> Self {
        let stem_layer = ConvBn::new(&(p / "stem"), 3, stem, 3, 1, w);
        let mut blocks = Vec::new();
        let mut i = stem;
        for (s, (&n, &planes)) in counts.iter().zip(widths).enumerate() {
            for b in 0..n {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let (r, out) = Residual::new(&(p / format!("layer{}", s + 1) / b), block, i, planes, stride, w);
                blocks.push(r);
                i = out;
            }
        }
        Self { stem: stem_layer, blocks, fc: init::torch_linear(p / "fc", i, classes) }
    }
}

impl Classifier for ResNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.stem.forward_t(x, train).relu();
        for b in &self.blocks {
            y = b.forward_t(&y, train);
        }
        y.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn head(&self) -> &nn::Linear {
        &self.fc
    }
}

/// He et al.'s CIFAR ResNet (6n+2 layers): basic blocks on widths 16/32/64 with parameter-free
/// shortcuts (subsample, then zero-pad the new channels).
#[derive(Debug)]
struct CifarResNet {
    stem: ConvBn,
    blocks: Vec<(ConvBn, ConvBn, bool)>,
    fc: nn::Linear,
}

impl CifarResNet {
    fn new(p: &nn::Path, n: usize, classes: i64) -> Self {
        let stem = ConvBn::new(&(p / "stem"), 3, 16, 3, 1, Weight::Torch);
        let mut blocks = Vec::new();
        let mut i = 16;
        for (s, planes) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..n {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let q = p / format!("layer{}", s + 1) / b;
                blocks.push((
                    ConvBn::new(&(&q / "a"), i, planes, 3, stride, Weight::Torch),
                    ConvBn::new(&(&q / "b"), planes, planes, 3, 1, Weight::Torch),
                    stride == 2,
                ));
                i = planes;
            }
        }
        Self { stem, blocks, fc: init::torch_linear(p / "fc", 64, classes) }
    }
}

impl Classifier for CifarResNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.stem.forward_t(x, train).relu();
        for (a, b, down) in &self.blocks {
            let out = b.forward_t(&a.forward_t(&y, train).relu(), train);
            let short = if *down {
                let s = y.slice(2, 0, None, 2).slice(3, 0, None, 2);
                let extra = out.size()[1] - s.size()[1];
                s.constant_pad_nd([0, 0, 0, 0, extra / 2, extra - extra / 2])
            } else {
                y.shallow_clone()
            };
            y = (out + short).relu();
        }
        y.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn head(&self) -> &nn::Linear {
        &self.fc
    }
}

/// One dense layer: BN, 1×1 conv to 4g, BN, 3×3 conv to g.
type DenseLayer = (nn::BatchNorm, nn::Conv2D, nn::BatchNorm, nn::Conv2D);
/// A transition: BN, 1×1 conv halving the channels (then 2×2 average pooling).
type Transition = (nn::BatchNorm, nn::Conv2D);

/// DenseNet-BC for CIFAR (the paper's code): bottleneck layers (BN-ReLU-1×1 conv to 4g,
/// BN-ReLU-3×3 conv to g) concatenated, transitions halving the channels with 2×2 average pooling.
#[derive(Debug)]
struct DenseNet {
    stem: nn::Conv2D,
    /// Per stage: its dense layers, then the transition (none after the last stage).
    stages: Vec<(Vec<DenseLayer>, Option<Transition>)>,
    bn: nn::BatchNorm,
    fc: nn::Linear,
}

impl DenseNet {
    fn new(p: &nn::Path, counts: &[usize], g: i64, classes: i64) -> Self {
        let mut c = 2 * g;
        let stem = conv(p / "stem", 3, c, 3, 1, Weight::Torch);
        let mut stages = Vec::new();
        for (s, &n) in counts.iter().enumerate() {
            let q = p / format!("dense{}", s + 1);
            let mut layers = Vec::new();
            for l in 0..n {
                let r = &q / l;
                layers.push((
                    bn(&r / "bn1", c),
                    conv(&r / "conv1", c, 4 * g, 1, 1, Weight::Torch),
                    bn(&r / "bn2", 4 * g),
                    conv(&r / "conv2", 4 * g, g, 3, 1, Weight::Torch),
                ));
                c += g;
            }
            let trans = (s + 1 < counts.len()).then(|| {
                let out = c / 2;
                let t = p / format!("trans{}", s + 1);
                let pair = (bn(&t / "bn", c), conv(&t / "conv", c, out, 1, 1, Weight::Torch));
                c = out;
                pair
            });
            stages.push((layers, trans));
        }
        Self { stem, stages, bn: bn(p / "bn", c), fc: init::torch_linear(p / "fc", c, classes) }
    }
}

impl Classifier for DenseNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.apply(&self.stem);
        for (layers, trans) in &self.stages {
            for (b1, c1, b2, c2) in layers {
                let out = y.apply_t(b1, train).relu().apply(c1).apply_t(b2, train).relu().apply(c2);
                y = Tensor::cat(&[out, y], 1);
            }
            if let Some((b, c)) = trans {
                y = y.apply_t(b, train).relu().apply(c).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            }
        }
        y.apply_t(&self.bn, train).relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn head(&self) -> &nn::Linear {
        &self.fc
    }
}

/// A small network for CPU runs: three conv-BN-ReLU stages (32, 64, 128 channels, the last two
/// with stride 2), global average pooling and a linear layer (about 95 k parameters).
#[derive(Debug)]
struct SmallCnn {
    convs: Vec<ConvBn>,
    fc: nn::Linear,
}

impl SmallCnn {
    fn new(p: &nn::Path, classes: i64) -> Self {
        let convs = vec![
            ConvBn::new(&(p / "c1"), 3, 32, 3, 1, Weight::Torch),
            ConvBn::new(&(p / "c2"), 32, 64, 3, 2, Weight::Torch),
            ConvBn::new(&(p / "c3"), 64, 128, 3, 2, Weight::Torch),
        ];
        Self { convs, fc: init::torch_linear(p / "fc", 128, classes) }
    }
}

impl Classifier for SmallCnn {
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.shallow_clone();
        for c in &self.convs {
            y = c.forward_t(&y, train).relu();
        }
        y.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn head(&self) -> &nn::Linear {
        &self.fc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn params(arch: Arch, classes: i64) -> (i64, Vec<i64>) {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = build(arch, &vs.root(), classes);
        let count = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        let out = tch::no_grad(|| m.forward_t(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false));
        (count, out.size())
    }

    /// Parameter counts of the PyTorch definitions (the paper's code; He et al.'s ResNets with
    /// option-A shortcuts as the common PyTorch port `resnet20` … `resnet110` counts them:
    /// 269,722, 464,154, 853,018 and 1,727,962 at 10 classes), computed with torch 2.11 for 10
    /// and 100 classes.
    #[test]
    fn parameter_counts_match_pytorch() {
        for (arch, c10, c100) in [
            (Arch::ResNet18, 11_173_962, 11_220_132),
            (Arch::CifarResNet(3), 269_722, 275_572),
            (Arch::CifarResNet(5), 464_154, 470_004),
            (Arch::CifarResNet(9), 853_018, 858_868),
            (Arch::CifarResNet(18), 1_727_962, 1_733_812),
            (Arch::DenseNet121, 6_956_298, 7_048_548),
        ] {
            assert_eq!(params(arch, 10), (c10, vec![2, 10]), "{arch:?}");
            assert_eq!(params(arch, 100).0, c100, "{arch:?}");
        }
    }

    /// The large ones: counted without a forward pass (they are slow on CPU in debug builds).
    #[test]
    fn large_parameter_counts_match_pytorch() {
        for (arch, c10) in
            [(Arch::ResNet50, 23_520_842), (Arch::ResNet110Official, 45_864_522), (Arch::Wrn26x10, 36_481_434)]
        {
            let vs = nn::VarStore::new(Device::Cpu);
            let _m = build(arch, &vs.root(), 10);
            assert_eq!(vs.trainable_variables().iter().map(|t| t.numel() as i64).sum::<i64>(), c10, "{arch:?}");
        }
    }

    /// Every layer's initial weights against the official code's rule: each 4-d kernel and the
    /// classifier divided by the standard deviation its rule gives (PyTorch: U(±1/√fan_in), std
    /// 1/√(3·fan_in); the Wide-ResNet's kernels: N(0, 2/fan_out)) pool to a unit standard deviation,
    /// uniform ones never pass their bound, and batch norms start at exactly 1 and 0.
    #[test]
    fn networks_start_as_the_official_code_does() {
        for (arch, kernels_normal) in [
            (Arch::ResNet50, false),
            (Arch::Wrn26x10, true),
            (Arch::DenseNet121, false),
            (Arch::CifarResNet(18), false),
        ] {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let _m = build(arch, &vs.root(), 10);
            let (mut squares, mut count, mut bn) = (0.0, 0i64, 0);
            for (name, t) in vs.variables() {
                let shape = t.size();
                let t = t.to_kind(Kind::Double);
                let max = t.abs().max().double_value(&[]);
                if name.contains("bn") && shape.len() == 1 {
                    // Scale and running variance 1, shift and running mean 0.
                    let expected = if name.ends_with("weight") || name.ends_with("running_var") { 1.0 } else { 0.0 };
                    let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
                    assert!(lo == expected && hi == expected, "{arch:?} {name}: [{lo}, {hi}]");
                    bn += 1;
                    continue;
                }
                let (fan_in, fan_out) = init::fans(&shape);
                let normal = kernels_normal && shape.len() == 4;
                // The only bias is the classifier's, drawn with its weight's fan-in.
                let fan = if name.ends_with("bias") { fc_fan_in(&vs) } else { fan_in };
                let bound = 1.0 / (fan as f64).sqrt();
                let std = if normal { (2.0 / fan_out as f64).sqrt() } else { bound / 3f64.sqrt() };
                if !normal {
                    // The bound itself is rounded to float32 when drawn.
                    assert!(max <= bound * (1.0 + 1e-6), "{arch:?} {name}: |w| {max} beyond {bound}");
                }
                squares += (&t / std).square().sum(Kind::Double).double_value(&[]);
                count += t.numel() as i64;
            }
            let pooled = (squares / count as f64).sqrt();
            assert!((pooled - 1.0).abs() < 0.01, "{arch:?}: pooled std ratio {pooled}");
            assert!(bn > 2, "{arch:?}: no batch norm seen");
        }
    }

    /// The classifier's fan-in (the bias of the only linear layer shares it).
    fn fc_fan_in(vs: &nn::VarStore) -> i64 {
        vs.variables().iter().find(|(n, _)| n.ends_with("fc.weight")).map(|(_, t)| t.size()[1]).expect("fc")
    }

    #[test]
    fn small_cnn_and_names() {
        assert_eq!(params(Arch::SmallCnn, 10).1, vec![2, 10]);
        assert!("resnet51".parse::<Arch>().unwrap_err().contains("resnet110-official"));
        assert_eq!("resnet20".parse::<Arch>(), Ok(Arch::CifarResNet(3)));
        assert_eq!("resnet50".parse::<Arch>(), Ok(Arch::ResNet50));
    }
}
