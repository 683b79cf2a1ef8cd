//! The domains of the numeric options, one parser per kind of number: a value outside its domain
//! (too large to allocate, negative, NaN, …) is a usage error naming the option before anything
//! runs. The bounds are far above any real use and far below what would exhaust memory.

/// Most bins for ECE, AdaECE, classwise-ECE and MCE.
pub const MAX_BINS: usize = 100_000;
/// Most bootstrap resamples.
pub const MAX_RESAMPLES: usize = 100_000;
/// Most sentences `calib decode` holds before translating them.
pub const MAX_BUFFER: usize = 1_000_000;
/// Widest beam, and most translations per sentence.
pub const MAX_BEAM: usize = 1_000;
/// Most tokens per batch.
pub const MAX_TOKENS: usize = 100_000_000;
/// Largest sub-word vocabulary.
pub const MAX_VOCAB: usize = 10_000_000;
/// Most epochs or checkpoints averaged.
pub const MAX_COUNT: usize = 1_000_000;

fn whole(s: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is outside {lo}–{hi}"));
    }
    Ok(v)
}

pub fn bins(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_BINS)
}

pub fn resamples(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_RESAMPLES)
}

pub fn buffer(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_BUFFER)
}

pub fn beam(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_BEAM)
}

pub fn tokens(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_TOKENS)
}

/// Extra output tokens (`--max-len-b`): may be 0.
pub fn extra_tokens(s: &str) -> Result<usize, String> {
    whole(s, 0, MAX_TOKENS)
}

pub fn vocab(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_VOCAB)
}

pub fn count(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_COUNT)
}

fn real(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{v} is not a finite number"));
    }
    Ok(v)
}

/// Any finite number (a length penalty).
pub fn finite(s: &str) -> Result<f64, String> {
    real(s)
}

/// A finite number above 0 (temperatures).
pub fn positive(s: &str) -> Result<f64, String> {
    real(s).and_then(|v| if v > 0.0 { Ok(v) } else { Err(format!("{v} must be above 0")) })
}

/// A finite number of at least 0 (γ, smoothing values, length factors).
pub fn non_negative(s: &str) -> Result<f64, String> {
    real(s).and_then(|v| if v >= 0.0 { Ok(v) } else { Err(format!("{v} must be at least 0")) })
}

/// A number strictly between 0 and 1 (coverage levels, probability thresholds).
pub fn open_unit(s: &str) -> Result<f64, String> {
    real(s).and_then(|v| if v > 0.0 && v < 1.0 { Ok(v) } else { Err(format!("{v} must lie strictly between 0 and 1")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(bins("15"), Ok(15));
        assert_eq!(bins("1000000000").unwrap_err(), "1000000000 is outside 1–100000");
        assert_eq!(bins("0").unwrap_err(), "0 is outside 1–100000");
        assert_eq!(buffer("1000000000000000000").unwrap_err(), "1000000000000000000 is outside 1–1000000");
        assert_eq!(buffer("99999999999999999999999").unwrap_err(), "'99999999999999999999999' is not a whole number");
        assert_eq!(resamples("-1").unwrap_err(), "'-1' is not a whole number");
        assert_eq!(finite("-0.5"), Ok(-0.5));
        assert_eq!(finite("NaN").unwrap_err(), "NaN is not a finite number");
        assert_eq!(finite("inf").unwrap_err(), "inf is not a finite number");
        assert_eq!(positive("0").unwrap_err(), "0 must be above 0");
        assert_eq!(non_negative("-1").unwrap_err(), "-1 must be at least 0");
        assert_eq!(open_unit("1").unwrap_err(), "1 must lie strictly between 0 and 1");
        assert_eq!(open_unit("0.9"), Ok(0.9));
    }
}
