//! Output files that appear only whole.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::ClientError;

/// A file written beside its destination under a temporary name and renamed over it by
/// [`OutputFile::commit`]. Dropped before that (an error, an interrupted download), the
/// temporary file is removed: a failed `--out` leaves no partial file, and an existing
/// file at the destination is kept as it was.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl OutputFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self, ClientError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| ClientError::Usage(format!("{} is not a file name", path.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| ClientError::io(path.display().to_string(), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 << 10, tmp),
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file's path (to check what was written before committing).
    pub fn temp_path(&self) -> &Path {
        self.file.get_ref().path()
    }

    /// Flushes what was written, syncs it and renames it to the destination.
    pub fn commit(self) -> Result<(), ClientError> {
        let io = |e| ClientError::io(self.path.display().to_string(), e);
        let tmp = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_committed_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = OutputFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists(), "a dropped output leaves nothing behind");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let mut f = OutputFile::create(&path).unwrap();
        f.write_all(b"whole\n").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
