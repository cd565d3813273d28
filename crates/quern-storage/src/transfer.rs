//! Whole files to and from locations, for data a job keeps between its
//! phases (map outputs shuffled through object storage): upload a local
//! file, read a byte range back, delete everything under a prefix.
//!
//! An object is uploaded as [`OutputFile`]s are written (a streamed
//! multipart upload of bounded parts, never the whole file in memory), read
//! back in ranged GETs of at most 8 MiB ([`ObjectReader`]), and every request
//! is retried by `object_store` ([`crate::S3_RETRY`]) and then a few more
//! times here ([`crate::retry`]): an upload from the start (its key is the
//! caller's alone, so a second upload of the same bytes is harmless), a
//! range read and a deletion as they are. A local location (a path or
//! `file://` URL: a file system the job's processes share) is the same
//! operations with `std::fs`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::error::StorageError as Error;
use crate::location::Location;
use crate::output::OutputFile;
use crate::retry::{FIRST_PAUSE, TRIES, jitter};
use crate::runtime::block_on;
use crate::s3::{CHUNKS, ObjectReader, S3Stores, object_path};
use crate::store_commit::{delete_all, list};

fn transfer(context: &'static str, url: &str, message: impl std::fmt::Display) -> Error {
    Error::Transfer { context, url: url.to_owned(), message: message.to_string() }
}

/// The object named by `location` (a bucket alone names none).
fn object(s3: &S3Stores, location: &str, bucket: &str, key: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath), Error> {
    if key.is_empty() {
        return Err(Error::BadLocation {
            location: location.to_owned(),
            message: "names a bucket, not an object".into(),
        });
    }
    Ok((s3.store(bucket, location)?, object_path(key, location)?))
}

/// Uploads the file `local` to `location`; returns its size.
pub(crate) fn upload_file(s3: &S3Stores, local: &Path, location: &str) -> Result<u64, Error> {
    match Location::parse(location)? {
        Location::Local(dest) => copy_local(local, &dest, location),
        Location::S3 { bucket, key } => {
            let (store, path) = object(s3, location, &bucket, &key)?;
            let mut pause = FIRST_PAUSE;
            let mut tries = 0;
            loop {
                match upload_once(&store, &path, local, location) {
                    Ok(n) => return Ok(n),
                    Err(Failed::Local(e)) => return Err(transfer("reading", &local.display().to_string(), e)),
                    Err(Failed::Store(e)) if tries < TRIES => {
                        tries += 1;
                        tracing::debug!(url = location, "uploading: {e}; trying again ({tries} of {TRIES})");
                        std::thread::sleep(jitter(pause));
                        pause *= 2;
                    }
                    Err(Failed::Store(e)) => return Err(transfer("uploading to", location, e)),
                }
            }
        }
    }
}

/// Why one upload failed: the local file (no point trying again) or the
/// store.
enum Failed {
    Local(io::Error),
    Store(io::Error),
}

fn upload_once(store: &Arc<dyn ObjectStore>, path: &ObjectPath, local: &Path, url: &str) -> Result<u64, Failed> {
    let mut file = File::open(local).map_err(Failed::Local)?;
    let (mut writer, end) = OutputFile::object(Arc::clone(store), path.clone(), url.to_owned()).into_parts();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failed::Local(e)),
        };
        writer.write_all(&buf[..n]).map_err(Failed::Store)?;
        total += n as u64;
    }
    writer.flush().map_err(Failed::Store)?;
    drop(writer);
    end.finish().map_err(Failed::Store)?;
    Ok(total)
}

/// Copies `local` to `dest` through a temporary name beside it, so that
/// `dest` appears whole or not at all.
fn copy_local(local: &Path, dest: &Path, url: &str) -> Result<u64, Error> {
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| transfer("creating the directory of", url, e))?;
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    let copied = fs::copy(local, &partial).and_then(|n| fs::rename(&partial, dest).map(|()| n));
    copied.map_err(|e| {
        let _ = fs::remove_file(&partial);
        transfer("copying to", url, format!("from {}: {e}", local.display()))
    })
}

/// `len` bytes of `location` from `offset`, as a reader.
pub(crate) fn read_range(s3: &S3Stores, location: &str, offset: u64, len: u64) -> Result<Box<dyn Read + Send>, Error> {
    let missing_or = |context, e: io::Error| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Missing { url: location.to_owned() }
        } else {
            transfer(context, location, e)
        }
    };
    match Location::parse(location)? {
        Location::Local(path) => {
            let mut file = File::open(&path).map_err(|e| missing_or("opening", e))?;
            file.seek(SeekFrom::Start(offset)).map_err(|e| transfer("seeking in", location, e))?;
            Ok(Box::new(file.take(len)))
        }
        Location::S3 { bucket, key } => {
            let (store, _) = object(s3, location, &bucket, &key)?;
            let end = offset.checked_add(len).ok_or_else(|| transfer("reading", location, "the range overflows"))?;
            let mut reader = ObjectReader::new(store, &key, end, offset, None, CHUNKS)
                .map_err(|e| transfer("reading", location, e))?;
            reader.start().map_err(|e| missing_or("reading", e))?;
            Ok(Box::new(reader))
        }
    }
}

/// The size of the object or file at `location`; `None` when missing.
pub(crate) fn size_of(s3: &S3Stores, location: &str) -> Result<Option<u64>, Error> {
    match Location::parse(location)? {
        Location::Local(path) => match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(transfer("looking up", location, e)),
        },
        Location::S3 { bucket, key } => {
            if key.is_empty() {
                return Err(Error::BadLocation {
                    location: location.to_owned(),
                    message: "names a bucket, not an object".into(),
                });
            }
            Ok(s3.head(&bucket, &key, location)?.map(|info| info.size))
        }
    }
}

/// Deletes everything under `location`: every object under the prefix, or
/// the local directory (or file). Nothing there is no error.
pub(crate) fn delete_prefix(s3: &S3Stores, location: &str) -> Result<(), Error> {
    match Location::parse(location)? {
        Location::Local(path) => {
            let removed = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(e) => Err(e),
            };
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(transfer("deleting", location, e)),
                _ => Ok(()),
            }
        }
        Location::S3 { bucket, key } => {
            if key.is_empty() {
                return Err(Error::BadLocation {
                    location: location.to_owned(),
                    message: "names a whole bucket; only a prefix is deleted".into(),
                });
            }
            let store = s3.store(&bucket, location)?;
            let prefix = object_path(&key, location)?;
            let deleted = block_on(async move {
                let keys = list(&store, &prefix).await?;
                delete_all(&store, keys).await
            });
            match deleted {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(transfer("deleting under", location, e)),
                Err(e) => Err(transfer("deleting under", location, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn stores() -> S3Stores {
        let s3 = S3Stores::default();
        s3.insert("b", Arc::new(InMemory::new()));
        s3
    }

    fn read_all(s3: &S3Stores, location: &str, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        read_range(s3, location, offset, len).expect("open").read_to_end(&mut out).expect("read");
        out
    }

    /// Bytes that are not all alike, so a wrong offset shows.
    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    fn uploads_read_back_and_go_with_their_prefix(s3: &S3Stores, root: &str, keys: fn(&S3Stores, &str) -> usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("map.out");
        // More than one ranged GET of 8 MiB.
        let bytes = data((8 << 20) + 12_345);
        fs::write(&local, &bytes).expect("write");
        let a = format!("{root}/job-1/m-00000-a1.run");
        let b = format!("{root}/job-1/m-00001-a1.run");
        let other = format!("{root}/job-10/m-00000-a1.run");
        assert_eq!(upload_file(s3, &local, &a).expect("upload"), bytes.len() as u64);
        upload_file(s3, &local, &b).expect("upload");
        upload_file(s3, &local, &other).expect("upload");
        assert_eq!(read_all(s3, &a, 0, bytes.len() as u64), bytes);
        assert_eq!(read_all(s3, &a, 100, 50), &bytes[100..150]);
        let far = (8 << 20) - 10;
        assert_eq!(read_all(s3, &b, far, 5000), &bytes[far as usize..far as usize + 5000]);
        assert_eq!(read_all(s3, &b, 7, 0), b"");

        delete_prefix(s3, &format!("{root}/job-1")).expect("delete");
        assert!(matches!(read_range(s3, &a, 0, 10), Err(Error::Missing { .. })));
        assert!(matches!(read_range(s3, &b, 0, 10), Err(Error::Missing { .. })));
        // A sibling whose name starts the same is not under the prefix.
        assert_eq!(read_all(s3, &other, 0, 3), &bytes[..3]);
        assert_eq!(keys(s3, root), 1);
        delete_prefix(s3, &format!("{root}/job-1")).expect("deleting nothing is no error");
        delete_prefix(s3, &format!("{root}/job-10")).expect("delete");
        assert_eq!(keys(s3, root), 0);
    }

    #[test]
    fn objects_are_uploaded_read_in_ranges_and_deleted_by_prefix() {
        let s3 = stores();
        uploads_read_back_and_go_with_their_prefix(&s3, "s3://b/shuffle", |s3, _| {
            block_on({
                let store = s3.store("b", "s3://b").expect("store");
                async move { list(&store, &ObjectPath::from("shuffle")).await }
            })
            .expect("runtime")
            .expect("list")
            .len()
        });
    }

    #[test]
    fn local_files_are_copied_read_in_ranges_and_deleted_by_directory() {
        let s3 = S3Stores::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = format!("file://{}", dir.path().join("shuffle").display());
        uploads_read_back_and_go_with_their_prefix(&s3, &root, |_, root| {
            let path = Location::parse(root).expect("parse").as_local().expect("local").to_path_buf();
            walk(&path)
        });
        fn walk(p: &Path) -> usize {
            match fs::read_dir(p) {
                Ok(entries) => entries.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum(),
                Err(_) => 0,
            }
        }
    }

    #[test]
    fn a_missing_object_or_file_is_missing_and_a_bucket_is_not_a_prefix() {
        let s3 = stores();
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone.run").display().to_string();
        for location in ["s3://b/shuffle/none.run".to_owned(), gone] {
            let e = read_range(&s3, &location, 0, 10).err().expect("missing");
            assert!(matches!(e, Error::Missing { .. }), "{e}");
            assert!(e.to_string().contains(&location), "{e}");
        }
        let e = delete_prefix(&s3, "s3://b").expect_err("a bucket");
        assert!(e.to_string().contains("whole bucket"), "{e}");
        let e = upload_file(&s3, dir.path(), "s3://b").expect_err("a bucket");
        assert!(e.to_string().contains("not an object"), "{e}");
        let e = upload_file(&s3, &dir.path().join("nothing"), "s3://b/k").expect_err("no local file");
        assert!(e.to_string().starts_with("reading "), "{e}");
    }
}
