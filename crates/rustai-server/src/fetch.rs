//! Fetching one model file over HTTP into a model folder ([`fetch`]): resumable
//! (HTTP `Range`), checked against an optional sha256, atomic (written as a hidden
//! `.NAME.partial`, renamed when complete and verified). A wrong digest leaves
//! nothing behind; an interrupted transfer leaves only the hidden partial file,
//! which the registry ignores and the next attempt resumes. Used by `rustai pull`
//! and by the server's background downloads (`download_jobs`).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// File name endings a download may have.
pub const MODEL_EXTENSIONS: [&str; 5] = [".gguf", ".bin", ".onnx", ".onnx.json", ".safetensors"];

/// `url` without its query string and fragment (which may carry tokens), for logs and status.
pub fn redacted(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// What to fetch.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DownloadRequest {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Expected sha256 (hex); the file is refused if it differs.
    #[serde(default)]
    pub sha256: Option<String>,
    /// File name in the model folder (default: the URL's last path segment).
    #[serde(default)]
    pub name: Option<String>,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The request itself is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The server answered with an error status.
    #[error("the server answered {0}")]
    Status(u16),
    /// The transfer failed (the partial file is kept for a resume).
    #[error("transfer failed: {0}")]
    Transfer(String),
    /// The file's digest is not the expected one (nothing is kept).
    #[error("sha256 mismatch: expected {expected}, got {actual}; the file was discarded")]
    Digest {
        /// What was asked for.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl DownloadRequest {
    /// The file name to use: safe (no folders, not hidden).
    pub fn file_name(&self) -> Result<String, DownloadError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(DownloadError::Invalid(format!("only http:// and https:// URLs can be downloaded, not `{}`", self.url)));
        }
        let name = match &self.name {
            Some(n) => n.clone(),
            None => self.url.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned(),
        };
        let bad = name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) || name.contains("..");
        if bad {
            return Err(DownloadError::Invalid(format!("`{name}` is not a usable file name; pass `name`")));
        }
        // Model files only: never configuration (models.toml) or other files the host reads.
        let lower = name.to_ascii_lowercase();
        if !MODEL_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
            return Err(DownloadError::Invalid(format!("`{name}`: only model files can be downloaded ({})", MODEL_EXTENSIONS.join(", "))));
        }
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(DownloadError::Invalid("sha256 must be 64 hex digits".into()));
            }
        }
        Ok(name)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io { path: path.to_path_buf(), source }
}

/// Fetch `req` into `dir`; `progress(bytes_so_far, total)` is called as data arrives.
/// Returns the final path. A file larger than `max_bytes` is abandoned (and its partial
/// file removed). File work runs off the async threads; the final name is taken only if
/// it is still free (never replacing a file that appeared meanwhile).
pub async fn fetch(
    client: &reqwest::Client,
    req: &DownloadRequest,
    dir: &Path,
    max_bytes: u64,
    mut progress: impl FnMut(u64, Option<u64>) + Send,
) -> Result<PathBuf, DownloadError> {
    let name = req.file_name()?;
    let dest = dir.join(&name);
    if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        return Err(DownloadError::Invalid(format!("{name} already exists in the model folder")));
    }
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    let partial = dir.join(format!(".{name}.partial"));
    // Resume: hash what is already there (on the blocking pool: it may be gigabytes), ask for the rest.
    let (mut hasher, mut have) = {
        let existing = partial.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
            let mut hasher = Sha256::new();
            let have = match std::fs::File::open(&existing) {
                Ok(mut f) => std::io::copy(&mut f, &mut HashWriter(&mut hasher))?,
                Err(_) => 0,
            };
            Ok((hasher, have))
        })
        .await
        .map_err(|e| DownloadError::Transfer(e.to_string()))?
        .map_err(io(&partial))?
    };
    let mut request = client.get(&req.url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(|e| DownloadError::Transfer(error_chain(&e)))?;
    let status = response.status();
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
        // Complete only if the server's size is what we have; else the file changed: start over.
        let total = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|n| n.trim().parse::<u64>().ok());
        if total != Some(have) {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(DownloadError::Transfer("the remote file changed since the partial download; retry to start over".into()));
        }
    } else if !status.is_success() {
        return Err(DownloadError::Status(status.as_u16()));
    } else if !resumed && have > 0 {
        // The server ignored the range: start over.
        hasher = Sha256::new();
        have = 0;
    }
    let total = response.content_length().map(|n| n.saturating_add(have));
    let too_big = |n: u64| DownloadError::Invalid(format!("the file is larger than the limit of {max_bytes} bytes ({n} bytes or more)"));
    if let Some(t) = total.filter(|t| *t > max_bytes) {
        return Err(too_big(t));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed && status != reqwest::StatusCode::RANGE_NOT_SATISFIABLE)
        .open(&partial)
        .await
        .map_err(io(&partial))?;
    if status.is_success() {
        use tokio::io::AsyncWriteExt;
        let mut body = response.bytes_stream();
        progress(have, total);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DownloadError::Transfer(error_chain(&e)))?;
            have += chunk.len() as u64;
            if have > max_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(too_big(have));
            }
            file.write_all(&chunk).await.map_err(io(&partial))?;
            hasher.update(&chunk);
            progress(have, total);
        }
    }
    file.sync_all().await.map_err(io(&partial))?;
    drop(file);
    let actual = format!("{:x}", hasher.finalize());
    if let Some(expected) = &req.sha256 {
        if !expected.eq_ignore_ascii_case(&actual) {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(DownloadError::Digest { expected: expected.to_lowercase(), actual });
        }
    }
    // No-replace: a hard link fails if the name was taken meanwhile (a plain rename would
    // silently replace that file).
    let (from, to) = (partial.clone(), dest.clone());
    tokio::task::spawn_blocking(move || {
        std::fs::hard_link(&from, &to)?;
        std::fs::remove_file(&from)
    })
    .await
    .map_err(|e| DownloadError::Transfer(e.to_string()))?
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            DownloadError::Invalid(format!("{name} appeared in the model folder during the download; kept the existing file"))
        } else {
            DownloadError::Io { path: dest.clone(), source: e }
        }
    })?;
    Ok(dest)
}

/// An error with its causes (reqwest's own message hides why a connection failed).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, name: Option<&str>) -> DownloadRequest {
        DownloadRequest { url: url.into(), sha256: None, name: name.map(Into::into) }
    }

    #[test]
    fn names_are_safe() {
        assert_eq!(req("http://h/a/model.gguf?x=1", None).file_name().unwrap(), "model.gguf");
        assert!(req("http://h/models.toml", None).file_name().is_err(), "configuration is not a model");
        assert!(req("http://h/x", Some("notes.txt")).file_name().is_err());
        assert_eq!(redacted("https://h/m.gguf?token=secret"), "https://h/m.gguf");
        assert_eq!(req("https://h/x", Some("mine.gguf")).file_name().unwrap(), "mine.gguf");
        for bad in [req("file:///etc/passwd", None), req("http://h/", None), req("http://h/x", Some("../x")), req("http://h/.hidden", None)] {
            assert!(matches!(bad.file_name(), Err(DownloadError::Invalid(_))), "{bad:?}");
        }
        let mut r = req("http://h/m.gguf", None);
        r.sha256 = Some("abc".into());
        assert!(r.file_name().is_err());
    }
}
