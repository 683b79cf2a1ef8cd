//! Atomic file writes: results and checkpoints are written to a temporary file in the target's
//! folder and renamed into place, so a crash or an error never leaves a half-written file.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// A temporary file in `dir` created with mode 0666 less the umask, like `fs::write` (tempfile's
/// default 0600 would make every result owner-only once renamed).
pub fn temp_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new().prefix(".calib-").permissions(std::fs::Permissions::from_mode(0o666)).tempfile_in(dir)
}

/// Writes `bytes` to `path` atomically, and syncs the folder so the rename survives a crash.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| Error::File { path: path.to_path_buf(), problem: format!("cannot write: {e}") };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = temp_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Best effort: a folder that cannot be opened or synced (some file systems) only loses the
/// crash guarantee, not the write.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_files_get_the_same_mode_as_fs_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        super::write(&a, b"{}").unwrap();
        std::fs::write(&b, b"{}").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a), mode(&b));
        assert_eq!(std::fs::read(&a).unwrap(), b"{}");
    }
}
