//! Atomic file writes: results and checkpoints are written to a temporary file in the target's
//! folder and renamed into place, so a crash or an error never leaves a half-written file. The
//! temporary files are named `.calib-<pid>-<random>`; a process killed in the middle of a write
//! leaves one behind, and the next successful write into that folder removes it (only files of
//! processes that no longer exist, so a concurrent writer's temporary file is never touched).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// A temporary file in `dir` created with mode 0666 less the umask, like `fs::write` (tempfile's
/// default 0600 would make every result owner-only once renamed).
pub fn temp_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    tempfile::Builder::new().prefix(&prefix).permissions(std::fs::Permissions::from_mode(0o666)).tempfile_in(dir)
}

const TEMP_PREFIX: &str = ".calib-";

/// Removes the temporary files in `dir` that processes no longer running left behind (killed
/// during a write). Only where `/proc` tells which processes run; best effort.
pub fn remove_stale(dir: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else { continue };
        let Some((pid, _)) = rest.split_once('-') else { continue };
        if pid != own && pid.bytes().all(|b| b.is_ascii_digit()) && !pid.is_empty() && !proc.join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
    remove_stale(dir);
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

    #[test]
    fn a_write_removes_what_killed_writes_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        // pid 0 never names a user process; ours is alive; the others are not temporary files.
        let own = format!(".calib-{}-live", std::process::id());
        for name in [".calib-0-abc", own.as_str(), ".calib-xyz", "notes.calib-1-x", ".calib--"] {
            std::fs::write(p(name), b"x").unwrap();
        }
        super::write(&p("r.json"), b"{}").unwrap();
        assert!(!p(".calib-0-abc").exists());
        for kept in [own.as_str(), ".calib-xyz", "notes.calib-1-x", ".calib--", "r.json"] {
            assert!(p(kept).exists(), "{kept}");
        }
    }
}
