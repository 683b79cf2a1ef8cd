//! sentencepiece `.model` files without the C++ library: the model's protobuf is read directly
//! and rebuilt as the equivalent `tokenizers` pipeline (what Hugging Face's `SpmConverter` does):
//! the precompiled normalisation map, whitespace clean-up, `▁` for spaces with the dummy prefix,
//! and the unigram or BPE model with sentencepiece's pieces, scores and ids. `tests/spm.rs`
//! checks the ids against the sentencepiece library's on real sentences.

use std::path::Path;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// The fields of `sentencepiece_model.proto` this loader uses (numbers from that file).
#[derive(Debug, Default)]
struct Model {
    pieces: Vec<(String, f32, i32)>,
    /// TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char.
    model_type: i32,
    unk_id: i32,
    pad_id: i32,
    byte_fallback: bool,
    charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
}

/// Piece types of `SentencePiece.Type`.
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// A protobuf wire-format reader over one message.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One field: its number and its value (varints and fixed-width values as integers).
enum Value<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    /// The next field, `None` at the end; `Err` on malformed input.
    fn field(&mut self) -> std::result::Result<Option<(u64, Value<'a>)>, ()> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint().ok_or(())?;
        let value = match key & 7 {
            0 => Value::Int(self.varint().ok_or(())?),
            1 => Value::Int(u64::from_le_bytes(self.take(8).ok_or(())?.try_into().map_err(|_| ())?)),
            2 => {
                let n = self.varint().ok_or(())? as usize;
                Value::Bytes(self.take(n).ok_or(())?)
            }
            5 => Value::Int(u64::from(u32::from_le_bytes(self.take(4).ok_or(())?.try_into().map_err(|_| ())?))),
            _ => return Err(()),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn fields(buf: &[u8], mut f: impl FnMut(u64, Value)) -> std::result::Result<(), ()> {
    let mut w = Wire { buf, pos: 0 };
    while let Some((number, value)) = w.field()? {
        f(number, value);
    }
    Ok(())
}

fn parse(buf: &[u8]) -> std::result::Result<Model, ()> {
    let mut m = Model {
        model_type: 1,
        unk_id: 0,
        pad_id: -1,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        ..Model::default()
    };
    let mut nested = Ok(());
    fields(buf, |number, value| {
        let Value::Bytes(bytes) = value else { return };
        let result = match number {
            1 => {
                let (mut piece, mut score, mut kind) = (String::new(), 0f32, 1i32);
                let r = fields(bytes, |n, v| match (n, v) {
                    (1, Value::Bytes(b)) => piece = String::from_utf8_lossy(b).into_owned(),
                    (2, Value::Int(i)) => score = f32::from_bits(i as u32),
                    (3, Value::Int(i)) => kind = i as i32,
                    _ => {}
                });
                m.pieces.push((piece, score, kind));
                r
            }
            2 => fields(bytes, |n, v| {
                if let Value::Int(i) = v {
                    match n {
                        3 => m.model_type = i as i32,
                        35 => m.byte_fallback = i != 0,
                        40 => m.unk_id = i as i32,
                        43 => m.pad_id = i as i32,
                        _ => {}
                    }
                }
            }),
            3 => fields(bytes, |n, v| match (n, v) {
                (2, Value::Bytes(b)) => m.charsmap = b.to_vec(),
                (3, Value::Int(i)) => m.add_dummy_prefix = i != 0,
                (4, Value::Int(i)) => m.remove_extra_whitespaces = i != 0,
                _ => {}
            }),
            _ => Ok(()),
        };
        nested = nested.and(result);
    })?;
    nested?;
    Ok(m)
}

/// HF's `SentencePieceExtractor`: every split of every piece into two pieces of the vocabulary is
/// a merge, ranked by the merged piece's id (sentencepiece's BPE merges the pair whose result
/// scores best, and its scores fall with the id), ties by the parts' ids.
fn merges(vocab: &tokenizers::models::bpe::Vocab, pieces: &[(String, f32, i32)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (piece, _, _) in pieces {
        let mut local: Vec<(u32, u32, String, String)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(i, _)| {
                let (l, r) = piece.split_at(i);
                Some((*vocab.get(l)?, *vocab.get(r)?, l.to_string(), r.to_string()))
            })
            .collect();
        local.sort();
        out.extend(local.into_iter().map(|(_, _, l, r)| (l, r)));
    }
    out
}

/// A sentencepiece model that cannot be read or rebuilt.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct Error {
    pub path: String,
    pub problem: String,
}

/// Reads a sentencepiece model and builds the equivalent tokenizer. Specials: sentencepiece's
/// `<unk>`, `<s>`, `</s>` keep their ids; `pad` is added after the last piece when the model
/// has no padding piece (sentencepiece's default).
pub fn load(path: &Path, pad: &str) -> Result<Tokenizer, Error> {
    let file = |problem: String| Error { path: path.display().to_string(), problem };
    let bytes = std::fs::read(path).map_err(|e| file(format!("cannot read: {e}")))?;
    let m = parse(&bytes).map_err(|_| file("not a sentencepiece model (malformed protobuf)".into()))?;
    if m.pieces.is_empty() {
        return Err(file("not a sentencepiece model (no pieces)".into()));
    }
    let lib = |e: Box<dyn std::error::Error + Send + Sync>| file(e.to_string());
    let model: ModelWrapper = match m.model_type {
        1 => {
            let vocab = m.pieces.iter().map(|(p, s, _)| (p.clone(), f64::from(*s))).collect();
            let unk = usize::try_from(m.unk_id).ok();
            Unigram::from(vocab, unk, m.byte_fallback).map_err(lib)?.into()
        }
        2 => {
            let vocab: tokenizers::models::bpe::Vocab =
                m.pieces.iter().enumerate().map(|(i, (p, _, _))| (p.clone(), i as u32)).collect();
            let merges = merges(&vocab, &m.pieces);
            let unk = m.pieces.get(m.unk_id.max(0) as usize).map(|p| p.0.clone()).unwrap_or_else(|| "<unk>".into());
            BPE::builder()
                .vocab_and_merges(vocab, merges)
                .unk_token(unk)
                .fuse_unk(true)
                .byte_fallback(m.byte_fallback)
                .build()
                .map_err(lib)?
                .into()
        }
        t => return Err(file(format!("sentencepiece model type {t} is not supported (unigram = 1 and BPE = 2 are)"))),
    };
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !m.charsmap.is_empty() {
        normalizers
            .push(Precompiled::from(&m.charsmap).map_err(|e| file(format!("bad normalisation map: {e}")))?.into());
    }
    if m.remove_extra_whitespaces {
        normalizers.push(
            Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), " ")
                .map_err(lib)?
                .into(),
        );
        normalizers.push(Strip::new(true, true).into());
    }
    let prepend = if m.add_dummy_prefix { PrependScheme::Always } else { PrependScheme::Never };
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(Sequence::new(normalizers)));
    tok.with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(Metaspace::new('▁', prepend, true))));
    tok.with_decoder(Some(DecoderWrapper::Metaspace(Metaspace::new('▁', prepend, true))));
    // Control and unknown pieces are never read from text; user-defined ones always are.
    let specials: Vec<AddedToken> = m
        .pieces
        .iter()
        .filter(|(_, _, kind)| *kind == CONTROL || *kind == UNKNOWN)
        .map(|(p, _, _)| AddedToken::from(p.clone(), true))
        .collect();
    tok.add_special_tokens(&specials);
    let user: Vec<AddedToken> = m
        .pieces
        .iter()
        .filter(|(_, _, kind)| *kind == USER_DEFINED)
        .map(|(p, _, _)| AddedToken::from(p.clone(), false))
        .collect();
    tok.add_tokens(&user);
    if m.pad_id < 0 {
        tok.add_special_tokens(&[AddedToken::from(pad, true)]);
    }
    Ok(tok)
}
