//! An upload as it arrives: streamed to a temporary file, hashed and counted on the way, so
//! an oversized body is refused before it is all read.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::UploadError;

/// An uploaded file, already streamed to a temporary file and hashed.
#[derive(Debug)]
pub struct IncomingFile {
    /// The name the user's browser sent (cleaned before use).
    pub file_name: String,
    /// The bytes, on disk; removed when this is dropped.
    pub temp: tempfile::NamedTempFile,
    /// Bytes received.
    pub size: u64,
    /// The first bytes, for the signature check.
    pub head: Vec<u8>,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// Streams an upload into a temporary file while hashing and counting it.
pub struct IncomingFileWriter {
    file_name: String,
    temp: tempfile::NamedTempFile,
    out: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    limit: u64,
}

impl IncomingFileWriter {
    /// Starts receiving `file_name` in the folder `dir` (the sandbox's
    /// [`uploads_dir`](crate::engines::Sandbox::uploads_dir), the only one its upload checkers
    /// may read); more than `limit` bytes is refused.
    pub fn new(dir: &Path, file_name: &str, limit: u64) -> std::io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("lector-upload-")
            .suffix(".pdf")
            .tempfile_in(dir)?;
        let out = tokio::fs::File::from_std(temp.reopen()?);
        Ok(IncomingFileWriter {
            file_name: file_name.to_owned(),
            temp,
            out,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            limit,
        })
    }

    /// Adds the next piece of the body. Fails as soon as the size limit is passed.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        use tokio::io::AsyncWriteExt;
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        if self.head.len() < 1024 {
            let take = (1024 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.out
            .write_all(chunk)
            .await
            .map_err(|e| UploadError::Internal(e.into()))
    }

    /// The whole file has arrived.
    pub async fn finish(mut self) -> Result<IncomingFile, UploadError> {
        use tokio::io::AsyncWriteExt;
        self.out
            .flush()
            .await
            .map_err(|e| UploadError::Internal(e.into()))?;
        Ok(IncomingFile {
            file_name: self.file_name,
            temp: self.temp,
            size: self.size,
            head: self.head,
            sha256: self.hasher.finalize().into(),
        })
    }
}

/// "100 MiB", "512 KiB", "12 bytes".
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100.0 MiB");
    }

    #[tokio::test]
    async fn the_writer_refuses_a_file_over_the_limit_as_it_streams() {
        let mut writer = IncomingFileWriter::new(&std::env::temp_dir(), "a.pdf", 10).unwrap();
        writer.write(b"%PDF-1.4").await.unwrap();
        let err = writer.write(b"more than ten").await.unwrap_err();
        assert!(matches!(err, UploadError::TooLarge { limit: 10 }));
    }

    #[tokio::test]
    async fn the_writer_hashes_and_keeps_the_head() {
        let mut writer = IncomingFileWriter::new(&std::env::temp_dir(), "a.pdf", 100).unwrap();
        writer.write(b"%PDF-").await.unwrap();
        writer.write(b"1.4").await.unwrap();
        let file = writer.finish().await.unwrap();
        assert_eq!(file.size, 8);
        assert_eq!(file.head, b"%PDF-1.4");
        assert_eq!(
            hex::encode(file.sha256),
            hex::encode(Sha256::digest(b"%PDF-1.4"))
        );
        assert_eq!(std::fs::read(file.temp.path()).unwrap(), b"%PDF-1.4");
    }
}
