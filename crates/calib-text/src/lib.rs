//! The text tracks' data, without libtorch: GloVe word vectors in their text format (plain or
//! `.gz`, streamed, restricted to a vocabulary), 20 Newsgroups in its `bydate` layout (headers
//! stripped as the reference Keras code does, a Keras-style tokeniser, a training vocabulary, a
//! fixed validation hold-out, padded id sequences), and the Stanford Sentiment Treebank's PTB
//! trees (a parser that prints back what it read, the binary task, and the per-level node lists a
//! level-batched Tree-LSTM runs on). Everything here is plain `Vec`s, so it is tested and used
//! without a device; the models and training tasks (the Global Pooling CNN for 20 Newsgroups and
//! the Tree-LSTM for SST) come later behind a `model` feature, as in `calib-mt`.

pub mod glove;
pub mod newsgroups;
pub mod sst;
mod text;
