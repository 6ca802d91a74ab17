//! Files and folders replaced atomically, so that a crash or a kill at any
//! moment leaves either the old content or the new, never half of it or none.

use std::io;
use std::path::{Path, PathBuf};

/// A file-system operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError { path: path.to_path_buf(), source }
}

/// A fresh hidden name beside `path`: `.tmp-<uuid>-<name>` in its folder.
fn sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", uuid::Uuid::new_v4().simple()))
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_new(path, bytes, false)
}

/// [`write_atomically`] for secrets: the file is readable by its owner only,
/// from the moment it is created.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_new(path, bytes, true)
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), FsError> {
    use std::io::Write as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(at(parent))?;
    }
    let tmp = sibling(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    if let Err(e) = options.open(&tmp).and_then(|mut file| file.write_all(bytes)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(at(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(at(path))
}

/// Builds the folder `target` by letting `fill` write into a temporary
/// sibling, then puts it in place. An existing `target` is moved aside and
/// deleted only once the new folder is in place (and put back if that
/// fails); a failed `fill` leaves `target` as it was.
pub fn replace_dir<E: From<FsError>>(target: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let staging = sibling(target);
    std::fs::create_dir_all(&staging).map_err(at(&staging))?;
    let result = fill(&staging).and_then(|()| swap_in(&staging, target).map_err(E::from));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn swap_in(staging: &Path, target: &Path) -> Result<(), FsError> {
    if !target.exists() {
        return std::fs::rename(staging, target).map_err(at(target));
    }
    let old = sibling(target);
    std::fs::rename(target, &old).map_err(at(target))?;
    if let Err(e) = std::fs::rename(staging, target) {
        // Put the previous folder back rather than leave none at all.
        let _ = std::fs::rename(&old, target);
        return Err(at(target)(e));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/current");
        write_atomically(&file, b"v1\n").unwrap();
        write_atomically(&file, b"v2\n").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"v2\n");

        let target = dir.path().join("model");
        replace_dir(&target, |d| std::fs::write(d.join("w"), b"old").map_err(at(d))).unwrap();
        replace_dir(&target, |d| std::fs::write(d.join("w"), b"new").map_err(at(d))).unwrap();
        assert_eq!(std::fs::read(target.join("w")).unwrap(), b"new");
        // A fill that fails leaves the installed folder as it was, and no scratch behind.
        let failed: Result<(), FsError> = replace_dir(&target, |d| {
            std::fs::write(d.join("w"), b"half").map_err(at(d))?;
            Err(at(d)(io::Error::other("disk full")))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(target.join("w")).unwrap(), b"new");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
