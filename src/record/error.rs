//! What can go wrong writing a recording, each with the path it concerns. IO errors are
//! sorted into the cases an operator acts on (not a directory, permissions, read-only, disk
//! full) and the rest; errors are `Clone` so a failed writer returns its error again cheaply.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `ENOSPC` (Linux and the BSDs): older kernels' and filesystems' disk full.
const ENOSPC: i32 = 28;
/// `EDQUOT` (Linux): a quota counts as a full disk too.
const EDQUOT: i32 = 122;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("invalid {what} `{value}` for a recording: use 1 to 128 letters, digits, '-', '_' or '.'")]
    InvalidName { what: &'static str, value: String },
    #[error("recording {id} already exists ({path})")]
    Exists { id: String, path: PathBuf },
    #[error("cannot record into {path}: it or a parent is not a directory")]
    NotADirectory {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("cannot record into {path}: permission denied")]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("cannot record into {path}: read-only file system")]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("disk full writing {path}: {source}")]
    StorageFull {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("recording IO error ({op} {path}): {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
}

impl RecordError {
    /// Sorts an IO error of `op` (`"create dir"`, `"write"`, ...) on `path`.
    pub fn io(op: &'static str, path: &Path, err: io::Error) -> RecordError {
        let path = path.to_path_buf();
        let raw = err.raw_os_error();
        let kind = err.kind();
        let source = Arc::new(err);
        match kind {
            _ if raw == Some(ENOSPC) || raw == Some(EDQUOT) => RecordError::StorageFull { path, source },
            io::ErrorKind::StorageFull => RecordError::StorageFull { path, source },
            io::ErrorKind::NotADirectory => RecordError::NotADirectory { path, source },
            // `create_dir_all` where a file has the directory's name.
            io::ErrorKind::AlreadyExists if op == "create dir" => RecordError::NotADirectory { path, source },
            io::ErrorKind::PermissionDenied => RecordError::PermissionDenied { path, source },
            io::ErrorKind::ReadOnlyFilesystem => RecordError::ReadOnly { path, source },
            _ => RecordError::Io { op, path, source },
        }
    }

    /// The disk (or a quota) is full.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, RecordError::StorageFull { .. })
    }
}

/// Closure form of [`RecordError::io`] for `map_err`.
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RecordError + 'a {
    move |e| RecordError::io(op, path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_sorted_with_their_path() {
        let p = Path::new("/rec/cam1/x.mp4.part");
        let full = RecordError::io("write", p, io::Error::from_raw_os_error(ENOSPC));
        assert!(full.is_storage_full());
        let text = full.to_string();
        assert!(text.starts_with("disk full writing /rec/cam1/x.mp4.part") && text.contains("os error 28"), "{text}");
        let notdir = RecordError::io("create dir", p, io::Error::from_raw_os_error(20));
        assert!(matches!(notdir, RecordError::NotADirectory { .. }), "{notdir:?}");
        let exists = RecordError::io("create dir", p, io::Error::from(io::ErrorKind::AlreadyExists));
        assert!(matches!(exists, RecordError::NotADirectory { .. }));
        let denied = RecordError::io("create", p, io::Error::from_raw_os_error(13));
        assert_eq!(denied.to_string(), "cannot record into /rec/cam1/x.mp4.part: permission denied");
        let other = RecordError::io("rename", p, io::Error::other("boom"));
        assert_eq!(other.to_string(), "recording IO error (rename /rec/cam1/x.mp4.part): boom");
    }
}
