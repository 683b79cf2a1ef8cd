//! The translation track. So far: corpus readers (plain text, `.gz`, WMT SGML, length filtering),
//! token-count batching,
//! sub-word vocabularies (`tokenizers`: BPE and unigram) and corpus metrics (BLEU, chrF, TER) through `sacrebleu-rs` behind a wrapper that checks what
//! the crate does not.

pub mod batch;
pub mod corpus;
#[cfg(feature = "model")]
pub mod decode;
pub mod metrics;
pub mod tokenize;
#[cfg(feature = "model")]
pub mod transformer;
