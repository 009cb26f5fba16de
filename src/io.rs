//! Small file helpers shared by every writer: atomic replace (temp file + rename).

use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary path beside `path` (same directory, so the final rename is atomic).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = format!(".{}.tmp-{}", name, std::process::id());
    path.with_file_name(tmp)
}

/// Write `path` atomically: `write` fills a temporary file beside it, which is renamed over
/// `path` only if `write` succeeds. On failure the temporary file is removed.
pub fn write_atomic<E, F>(path: &Path, write: F) -> Result<(), E>
where
    F: FnOnce(&Path) -> Result<(), E>,
    E: From<std::io::Error>,
{
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let tmp = temp_path_for(path);
    match write(&tmp) {
        Ok(()) => {
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                E::from(e)
            })?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Write bytes atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// Open an HDF5 file read-only, without HDF5's advisory file locking (which fails spuriously on
/// many parallel file systems and between handles of one process; colop never writes a file in
/// place: writers create a temporary file and rename it).
pub fn h5_open(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).open(path)
}

/// Create (truncate) an HDF5 file, without file locking (see [`h5_open`]).
pub fn h5_create(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        let r: Result<(), std::io::Error> = write_atomic(&p, |tmp| {
            std::fs::write(tmp, b"partial")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_bytes_atomic(&p, b"ok").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ok");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
