//! The translation track: corpus readers (plain text, `.gz`, WMT SGML), binarised parallel data,
//! sub-word vocabularies (`tokenizers`: BPE and unigram; sentencepiece models), corpus metrics
//! (BLEU, chrF, TER) through `sacrebleu-rs` behind a wrapper that checks what the crate does not,
//! and with the feature `model` (libtorch) the Transformer, beam search, the training task,
//! recipes and runs.

pub mod corpus;
pub mod data;
#[cfg(feature = "model")]
pub mod decode;
pub mod metrics;
#[cfg(feature = "model")]
pub mod recipe;
#[cfg(feature = "model")]
pub mod run;
pub mod spm;
#[cfg(feature = "model")]
pub mod study;
#[cfg(feature = "model")]
pub mod task;
pub mod tokenize;
#[cfg(feature = "model")]
pub mod transformer;
