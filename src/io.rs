//! Small file helpers shared by every writer: atomic replace (temp file + rename), multi-file
//! outputs written all or nothing ([`StagedDir`]), and the checks a command makes on its output
//! paths before any work.

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

/// Check, before any work, that a file can be written at `path`: it is not a directory, its
/// directory exists or can be created, and a file can be created there (a probe file beside the
/// target is created and removed). Errors name `path`.
pub fn check_writable_file(path: &Path) -> std::io::Result<()> {
    let named = |msg: String| std::io::Error::other(format!("{}: {msg}", path.display()));
    if path.is_dir() {
        return Err(named("is a directory; give a file name".into()));
    }
    if path.file_name().is_none() {
        return Err(named("has no file name".into()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| named(format!("cannot create its directory ({e})")))?;
    }
    let probe = temp_path_for(path);
    std::fs::File::create(&probe).map_err(|e| named(format!("cannot be written ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Check that `name` can name one output inside an output directory: not empty, not `.` or
/// `..`, no path separator (so never absolute and never outside the directory).
pub fn check_output_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a file name"));
    }
    if name.contains('/') || name.contains('\\') || Path::new(name).is_absolute() {
        return Err(format!("`{name}` contains a path separator; outputs stay inside --out"));
    }
    Ok(())
}

/// A directory of outputs written all or nothing: everything goes into a staging directory
/// beside `target` (same file system), which [`StagedDir::commit`] moves into place. Dropped
/// without a commit (an error on the way), the staging directory and all in it are removed, so
/// a failed command leaves `target` as it was.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Create the staging directory for `target` (and `target`'s parent if missing).
    pub fn new(target: &Path) -> std::io::Result<Self> {
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", target.display()));
        if target.exists() && !target.is_dir() {
            return Err(std::io::Error::other(format!("{}: exists and is not a directory", target.display())));
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(named)?;
        }
        let staging = temp_path_for(target);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(named)?;
        }
        std::fs::create_dir(&staging).map_err(named)?;
        Ok(Self { target: target.to_path_buf(), staging, committed: false })
    }

    /// Where to write the outputs now.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Where `path` (inside [`Self::path`]) ends up after the commit.
    pub fn final_path(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.staging) {
            Ok(rel) => self.target.join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// Move the outputs into place: the staging directory becomes `target` if that does not
    /// exist; otherwise each staged entry replaces its namesake in `target` (other entries of
    /// `target` stay).
    pub fn commit(mut self) -> std::io::Result<()> {
        let named = |p: &Path, e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        if !self.target.exists() {
            std::fs::rename(&self.staging, &self.target).map_err(|e| named(&self.target, e))?;
        } else {
            for entry in std::fs::read_dir(&self.staging).map_err(|e| named(&self.staging, e))? {
                let from = entry.map_err(|e| named(&self.staging, e))?.path();
                let to = self.target.join(from.file_name().expect("a directory entry has a name"));
                if to.is_dir() && !to.is_symlink() {
                    std::fs::remove_dir_all(&to).map_err(|e| named(&to, e))?;
                }
                std::fs::rename(&from, &to).map_err(|e| named(&to, e))?;
            }
            std::fs::remove_dir(&self.staging).map_err(|e| named(&self.staging, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
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

    #[test]
    fn staged_dir_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let staged = StagedDir::new(&target).unwrap();
            std::fs::write(staged.path().join("a.h5"), b"a").unwrap();
            // Dropped without commit: nothing anywhere.
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let staged = StagedDir::new(&target).unwrap();
        std::fs::write(staged.path().join("a.h5"), b"a").unwrap();
        assert_eq!(staged.final_path(&staged.path().join("a.h5")), target.join("a.h5"));
        staged.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a.h5")).unwrap(), b"a");
        // Into an existing directory: staged entries replace their namesakes, others stay.
        std::fs::create_dir(target.join("sub")).unwrap();
        std::fs::write(target.join("sub/old"), b"old").unwrap();
        std::fs::write(target.join("keep"), b"k").unwrap();
        let staged = StagedDir::new(&target).unwrap();
        std::fs::create_dir(staged.path().join("sub")).unwrap();
        std::fs::write(staged.path().join("sub/new"), b"new").unwrap();
        std::fs::write(staged.path().join("a.h5"), b"b").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a.h5")).unwrap(), b"b");
        assert!(target.join("sub/new").is_file() && !target.join("sub/old").exists() && target.join("keep").is_file());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn output_names_stay_inside() {
        for bad in ["", ".", "..", "../../x", "/tmp/x", "a/b", "a\\b"] {
            assert!(check_output_name(bad).is_err(), "{bad}");
        }
        assert!(check_output_name("run-1.5").is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable_file(dir.path()).unwrap_err().to_string().contains("directory"));
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert!(check_writable_file(&dir.path().join("f/run.h5")).is_err());
        check_writable_file(&dir.path().join("new/run.h5")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }
}
