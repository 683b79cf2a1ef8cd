//! The features/head split of a classifier, shared by every domain whose model ends in one linear
//! layer (images, documents, sentences). The split is what the per-sample gradient-norm probe of
//! the paper's Figure 3 needs: the last layer's weight gradient for sample i is
//! (∂L_i/∂z_i) h_iᵀ, whose norm is ‖∂L_i/∂z_i‖ · ‖h_i‖.

use crate::task::Features;
use tch::nn::{self, ModuleT, VarStore};
use tch::Tensor;

/// A classifier: features, then one linear layer (`forward_t` = the head on the features).
pub trait Classifier: ModuleT {
    /// The features `[n, d]` the last linear layer reads.
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor;
    /// The last linear layer.
    fn head(&self) -> &nn::Linear;
}

/// The features, the head's logits (evaluation mode) and `targets`.
pub fn features(model: &dyn Classifier, x: &Tensor, targets: &Tensor) -> Features {
    let hidden = model.features_t(x, false);
    let logits = hidden.apply(model.head());
    Features { hidden, logits, targets: targets.shallow_clone() }
}

/// The var-store name of the head's weight, found by identity (the same storage), not by name.
pub fn head_name(vs: &VarStore, model: &dyn Classifier) -> Option<String> {
    let ptr = model.head().ws.data_ptr();
    vs.variables().into_iter().find(|(_, t)| t.data_ptr() == ptr).map(|(name, _)| name)
}
