//! Files in and out: uploads that become job inputs, and a finished job's
//! output files, listed and downloaded. Both live in the coordinator's
//! storage ([`FileArea`]: its data directory, or an S3 prefix), read and
//! written through [`quern_storage::Storage`] like every job's data.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quern_coordinator::state::JobPhase;
use quern_core::JobId;
use quern_storage::{Location, Storage};
use tokio::io::AsyncWriteExt;

use crate::dto::{OutputFile, OutputList, StoredCode, UploadForm, Uploaded, UploadedFile};
use crate::{ApiError, ApiState, Authorized, Caller};

/// Where the API keeps what people upload, and the outputs they name
/// relatively: `ROOT/uploads/<user>/<upload>/<file>` and
/// `ROOT/outputs/<name>`.
#[derive(Debug, Clone)]
pub struct FileArea {
    root: Location,
    scratch: PathBuf,
    max_upload: u64,
}

impl FileArea {
    /// Files under `root` (a local directory or an `s3://` prefix), uploads
    /// received into `scratch` (a local directory) first, at most
    /// `max_upload` bytes per request.
    pub fn new(root: &str, scratch: PathBuf, max_upload: u64) -> Result<FileArea, quern_storage::StorageError> {
        Ok(FileArea { root: Location::parse(root)?, scratch, max_upload })
    }

    /// The root, as a location string.
    pub fn root(&self) -> String {
        self.root.to_string()
    }

    /// Where a job's output named `name` goes: an absolute path or a URL as
    /// given, a relative name under `ROOT/outputs/`.
    pub(crate) fn output_location(&self, name: &str) -> Result<String, ApiError> {
        if name.starts_with('/') || Location::is_url(name) {
            return Ok(name.to_owned());
        }
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(ApiError::unprocessable(format!(
                "output: {name:?} is not a name under the output area (no '.' or '..' parts)"
            )));
        }
        Ok(self.root.join("outputs").join(&parts.join("/")).to_string())
    }
}

/// Ids for uploads: the time, and a count that makes two in one
/// millisecond differ.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// A file name from a client, as its last path part, if it is one a file
/// may have.
fn clean_name(raw: &str) -> Option<String> {
    let name = raw.rsplit(['/', '\\']).next()?.trim();
    let fine = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.starts_with('_')
        && name.len() <= 255
        && !name.chars().any(char::is_control);
    fine.then(|| name.to_owned())
}

/// A received part, in the scratch directory.
struct Received {
    name: String,
    scratch: PathBuf,
    bytes: u64,
}

/// Removes the scratch files of an upload when it ends, however it ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes one part to `path`, counting against what is left of the limit.
async fn receive(field: &mut Field<'_>, path: &FsPath, left: &mut u64, limit: u64) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
    let mut bytes = 0u64;
    while let Some(chunk) =
        field.chunk().await.map_err(|e| ApiError::bad_request(format!("reading the upload: {}", e.body_text())))?
    {
        let n = chunk.len() as u64;
        if n > *left {
            return Err(ApiError::too_large(format!("the upload is over the limit of {limit} bytes")));
        }
        *left -= n;
        bytes += n;
        file.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    }
    file.sync_all().await.map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Uploads files (multipart/form-data, each part named `file` with a
/// filename): each is stored in the coordinator's storage and its location
/// answered, to use as a job input. Every file arrives whole or the
/// request fails and none is kept.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "files", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Uploaded), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody),
        (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
        (status = 503, body = crate::ErrorBody)))]
pub(crate) async fn upload(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let area = &s.files;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > area.max_upload) {
        return Err(ApiError::too_large(format!("the upload is over the limit of {} bytes", area.max_upload)));
    }
    let mut multipart = multipart?;
    tokio::fs::create_dir_all(&area.scratch)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", area.scratch.display())))?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let id = format!("{now_ms}-{}", UPLOADS.fetch_add(1, Ordering::Relaxed));
    let mut scratch = Scratch(Vec::new());
    let mut received: Vec<Received> = Vec::new();
    let mut left = area.max_upload;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the upload: {}", e.body_text())))?
    {
        let part = field.name().unwrap_or_default().to_owned();
        if part != "file" {
            return Err(ApiError::unprocessable(format!("part {part:?}: send each file as a part named \"file\"")));
        }
        let raw = field.file_name().unwrap_or_default().to_owned();
        let Some(name) = clean_name(&raw) else {
            return Err(ApiError::unprocessable(format!(
                "part \"file\": {raw:?} is not a file name (it needs one, not starting with '.' or '_')"
            )));
        };
        if received.iter().any(|r| r.name == name) {
            return Err(ApiError::unprocessable(format!("two files named {name:?} in one upload")));
        }
        let path = area.scratch.join(format!("{id}.{}", received.len()));
        scratch.0.push(path.clone());
        let bytes = receive(&mut field, &path, &mut left, area.max_upload).await?;
        received.push(Received { name, scratch: path, bytes });
    }
    if received.is_empty() {
        return Err(ApiError::unprocessable("no file: send one or more parts named \"file\""));
    }
    let owner = match &caller {
        Caller::ClusterToken => "_cluster".to_owned(),
        Caller::User { name, .. } => name.clone(),
    };
    let dir = area.root.join("uploads").join(&owner).join(&id);
    let storage = s.handle.storage().clone();
    let files = tokio::task::spawn_blocking(move || store_uploads(&storage, &dir, received))
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))??;
    drop(scratch);
    Ok((StatusCode::CREATED, Json(Uploaded { files })))
}

/// Moves received files to their place under `dir`.
fn store_uploads(storage: &Storage, dir: &Location, received: Vec<Received>) -> Result<Vec<UploadedFile>, ApiError> {
    let mut files = Vec::with_capacity(received.len());
    for r in received {
        let location = dir.join(&r.name);
        match location.as_local() {
            // The scratch directory is on the data directory's file
            // system: a rename, which is whole or nothing.
            Some(path) => {
                let parent = path.parent().unwrap_or(path);
                std::fs::create_dir_all(parent)
                    .map_err(|e| ApiError::internal(format!("creating {}: {e}", parent.display())))?;
                if std::fs::rename(&r.scratch, path).is_err() {
                    storage.upload_file(&r.scratch, &location.to_string())?;
                }
            }
            None => {
                storage.upload_file(&r.scratch, &location.to_string())?;
            }
        }
        files.push(UploadedFile { name: r.name, location: location.to_string(), bytes: r.bytes });
    }
    Ok(files)
}

/// A succeeded job's output files, visible to the caller: (location,
/// files as (name under the output, location, bytes)).
async fn output_files(
    s: &ApiState,
    caller: &Caller,
    id: JobId,
) -> Result<(String, Vec<(String, String, u64)>), ApiError> {
    let job = crate::jobs::visible(s, caller, id).await?;
    if job.state != JobPhase::Succeeded {
        return Err(ApiError::conflict(format!(
            "job {id} is {}: only a succeeded job's output is committed",
            job.state.as_str()
        )));
    }
    let output = job.output.clone();
    let storage = s.handle.storage().clone();
    let listed = tokio::task::spawn_blocking(move || storage.resolve_inputs(std::slice::from_ref(&output)))
        .await
        .map_err(|e| ApiError::internal(format!("listing the output: {e}")))?
        .map_err(|e| ApiError::conflict(format!("job {id}'s output {} cannot be listed: {e}", job.output)))?;
    let root = job.output.trim_end_matches('/').to_owned();
    let files = listed
        .into_iter()
        .map(|f| {
            let name = f.location.strip_prefix(&root).unwrap_or(&f.location).trim_start_matches('/').to_owned();
            (name, f.location, f.len)
        })
        .collect();
    Ok((job.output, files))
}

/// A succeeded job's output files (`_SUCCESS` and other hidden files left
/// out).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/output", tag = "files",
    params(("id" = u64, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, body = OutputList), (status = 401, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn list_output(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<OutputList>, ApiError> {
    let (location, files) = output_files(&s, &caller, JobId(id?.0)).await?;
    let files = files.into_iter().map(|(name, _, bytes)| OutputFile { name, bytes }).collect();
    Ok(Json(OutputList { location, files }))
}

/// One output file of a succeeded job, streamed.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/output/{name}", tag = "files",
    params(("id" = u64, Path, description = "The job's id"),
        ("name" = String, Path, description = "The file's name as the output list gives it")),
    security(("bearer" = [])),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"),
        (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
        (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn download(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    path: Result<Path<(u64, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, name)) = path?;
    let (_, files) = output_files(&s, &caller, JobId(id)).await?;
    // Only a listed file: a name is never joined to a path.
    let Some((name, location, len)) = files.into_iter().find(|(n, _, _)| *n == name) else {
        return Err(ApiError::not_found(format!("job {id}'s output has no file {name:?}")));
    };
    let storage = s.handle.storage().clone();
    let reader = tokio::task::spawn_blocking(move || storage.read_range(&location, 0, len))
        .await
        .map_err(|e| ApiError::internal(format!("opening the file: {e}")))??;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            let sent = match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    tx.blocking_send(Ok(buf))
                }
                Err(e) => tx.blocking_send(Err(e)),
            };
            if sent.is_err() {
                return; // the client went away
            }
        }
    });
    let file_name = name.rsplit('/').next().unwrap_or(&name).replace(['"', '\\'], "_");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_kept() {
        assert_eq!(clean_name("books/moby.txt").as_deref(), Some("moby.txt"));
        assert_eq!(clean_name("C:\\data\\a b.txt").as_deref(), Some("a b.txt"));
        for bad in ["", "..", ".hidden", "_SUCCESS", "dir/", "a\nb"] {
            assert_eq!(clean_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn relative_outputs_go_under_the_area() {
        let area = FileArea::new("/data/files", PathBuf::from("/data/tmp"), 10).expect("area");
        assert_eq!(area.output_location("counts").expect("name"), "/data/files/outputs/counts");
        assert_eq!(area.output_location("a//b").expect("name"), "/data/files/outputs/a/b");
        assert_eq!(area.output_location("/abs/out").expect("absolute"), "/abs/out");
        assert_eq!(area.output_location("s3://b/out").expect("url"), "s3://b/out");
        assert!(area.output_location("../etc").is_err());
        assert!(area.output_location("").is_err());
    }
}

/// Stores a code file a job ships (a WebAssembly module, a streaming
/// program, a support file): the request's body, as it is. Stored once
/// under the SHA-256 of its bytes, which the answer gives; a job names it
/// by that hash in its `code`.
#[utoipa::path(post, path = "/api/v1/code", tag = "files", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = StoredCode), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
        (status = 413, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
        (status = 503, body = crate::ErrorBody)))]
pub(crate) async fn put_code(
    Authorized(_, _): Authorized,
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<StoredCode>), ApiError> {
    let limit = s.files.max_upload;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(format!("a code file may have at most {limit} bytes")));
    }
    // The hash is the content's: read it whole (within the limit), then
    // store it under that hash.
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| ApiError::too_large(format!("a code file may have at most {limit} bytes")))?;
    let hash = quern_core::CodeHash::of(&bytes);
    let size = bytes.len() as u64;
    let chunks = tokio_stream::iter([Ok::<_, std::convert::Infallible>(bytes.to_vec())]);
    s.handle.code_store()?.put(hash, chunks).await?;
    Ok((StatusCode::CREATED, Json(StoredCode { sha256: hash.to_string(), size })))
}
