//! Opening a text file that may be gzip-compressed, shared by the readers.

use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A buffered reader over the file's bytes, decompressed when the name ends in `.gz` (several
/// gzip members in a row are read as one stream, as `zcat` does).
pub(crate) fn open(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn Read> =
        if path.extension().is_some_and(|x| x == "gz") { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// Reads the next line into `buf` without its line end (`\n` or `\r\n`); false at the end.
pub(crate) fn next_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    if reader.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(true)
}
