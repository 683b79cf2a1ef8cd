//! The text tracks. Without features: GloVe word vectors in their text format (plain or `.gz`,
//! streamed, restricted to a vocabulary), 20 Newsgroups in its `bydate` layout (headers stripped
//! as the reference Keras code does, a Keras-style tokeniser, a training vocabulary, a fixed
//! validation hold-out, padded id sequences), and the Stanford Sentiment Treebank's PTB trees (a
//! parser that prints back what it read, the binary task, and the per-level node lists a
//! level-batched Tree-LSTM runs on); plain `Vec`s, used and tested without a device.
//!
//! With `model` (libtorch): the Global Pooling CNN for 20 Newsgroups and the binary Tree-LSTM for
//! SST, their `calib-train` tasks, recipes (`task = "text"`, `task = "tree"`) and runs.

pub mod glove;
pub mod newsgroups;
pub mod sst;
mod text;

#[cfg(feature = "model")]
pub mod gpcnn;
#[cfg(feature = "model")]
pub mod recipe;
#[cfg(feature = "model")]
pub mod run;
#[cfg(feature = "model")]
pub mod task;
#[cfg(feature = "model")]
pub mod treelstm;
