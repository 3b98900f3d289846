//! The recording's file operations, in one place: every write goes through [`Io::write`],
//! where a test hook can fail it (a full disk on the Nth write), and every error comes back
//! as a [`RecordError`] naming its path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::error::{io_err, RecordError};

/// Called with the path before each write; an error fails that write.
pub(crate) type FaultHook = Box<dyn FnMut(&Path) -> io::Result<()> + Send>;

#[derive(Default)]
pub(crate) struct Io {
    fault: Option<FaultHook>,
}

impl Io {
    #[cfg(test)]
    pub fn set_fault(&mut self, hook: FaultHook) {
        self.fault = Some(hook);
    }

    pub fn create_dir_all(&mut self, path: &Path) -> Result<(), RecordError> {
        fs::create_dir_all(path).map_err(io_err("create dir", path))
    }

    /// A new file (never one that exists: a name is used once).
    pub fn create_new(&mut self, path: &Path) -> Result<File, RecordError> {
        OpenOptions::new().write(true).create_new(true).open(path).map_err(io_err("create", path))
    }

    pub fn write(&mut self, file: &mut File, path: &Path, data: &[u8]) -> Result<(), RecordError> {
        if let Some(hook) = self.fault.as_mut() {
            hook(path).map_err(io_err("write", path))?;
        }
        file.write_all(data).map_err(io_err("write", path))
    }

    pub fn sync(&mut self, file: &File, path: &Path) -> Result<(), RecordError> {
        file.sync_all().map_err(io_err("sync", path))
    }

    /// Renames and makes the rename durable (the directory synced).
    pub fn rename(&mut self, from: &Path, to: &Path) -> Result<(), RecordError> {
        fs::rename(from, to).map_err(io_err("rename", from))?;
        sync_dir(to)
    }

    /// Writes `path` whole or not at all: a temporary file beside it, synced, renamed over it.
    pub fn write_atomic(&mut self, path: &Path, data: &[u8]) -> Result<(), RecordError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("index");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            self.write(&mut file, &tmp, data)?;
            self.sync(&file, &tmp)?;
            self.rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Syncs the directory holding `path` (so a new name in it survives a crash).
pub(crate) fn sync_dir(path: &Path) -> Result<(), RecordError> {
    let Some(dir) = path.parent() else { return Ok(()) };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync dir", dir))
}
