//! The `local` sink: `{dir}/{session_id}/{name}`.

use super::{Sink, SinkError};
use crate::reader::check_session_id;
use crate::spool::{sync_dir, tmp_path};
use async_trait::async_trait;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct LocalSink {
    dir: PathBuf,
}

impl LocalSink {
    pub fn new(dir: PathBuf) -> LocalSink {
        LocalSink { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, session_id: &str, name: &str) -> Result<PathBuf, SinkError> {
        check_session_id(session_id).map_err(|e| SinkError::new(e.to_string()))?;
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(SinkError::new(format!("{name:?} is not an object name")));
        }
        Ok(self.dir.join(session_id).join(name))
    }

    pub(crate) fn put_sync(
        &self,
        session_id: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), SinkError> {
        let path = self.path(session_id, name)?;
        let fail = |doing: &str, e: std::io::Error| {
            SinkError::new(format!("cannot {doing} {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("create the directory of", e))?;
        }
        let tmp = tmp_path(&path);
        {
            let mut file = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
            file.write_all(bytes).map_err(|e| fail("write", e))?;
            file.sync_all().map_err(|e| fail("fsync", e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| fail("rename into", e))?;
        sync_dir(&path);
        Ok(())
    }

    pub(crate) fn get_sync(
        &self,
        session_id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.path(session_id, name)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SinkError::new(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    pub(crate) fn list_sync(&self, session_id: &str) -> Result<Vec<String>, SinkError> {
        check_session_id(session_id).map_err(|e| SinkError::new(e.to_string()))?;
        let dir = self.dir.join(session_id);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SinkError::new(format!(
                    "cannot list {}: {e}",
                    dir.display()
                )));
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.ends_with(".tmp") && !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[async_trait]
impl Sink for LocalSink {
    fn describe(&self) -> String {
        format!("local {}", self.dir.display())
    }

    async fn put(&self, session_id: &str, name: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.put_sync(session_id, name, &bytes)
    }

    async fn get(&self, session_id: &str, name: &str) -> Result<Option<Vec<u8>>, SinkError> {
        self.get_sync(session_id, name)
    }

    async fn list(&self, session_id: &str) -> Result<Vec<String>, SinkError> {
        self.list_sync(session_id)
    }

    async fn sessions(&self) -> Result<Vec<String>, SinkError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SinkError::new(format!(
                    "cannot list {}: {e}",
                    self.dir.display()
                )));
            }
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_session_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), SinkError> {
        check_session_id(session_id).map_err(|e| SinkError::new(e.to_string()))?;
        let dir = self.dir.join(session_id);
        // The manifest first: a half-deleted recording reads as incomplete.
        let _ = std::fs::remove_file(dir.join(crate::manifest::MANIFEST_NAME));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SinkError::new(format!(
                "cannot delete {}: {e}",
                dir.display()
            ))),
        }
    }
}
