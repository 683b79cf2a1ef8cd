//! One module per subcommand.

pub mod bench;
pub mod bleu;
pub mod calibrate;
pub mod gamma;
pub mod metrics;
pub mod ood;
pub mod tokenizer;
pub mod torch;
