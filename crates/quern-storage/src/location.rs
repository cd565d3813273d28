//! Where data is: [`Location`], parsed from what a user typed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StorageError;

/// A place to read from: a local path or an S3 object or prefix.
///
/// - A plain path (`books/`, `/data/in.txt`) or a `file:///abs/path` URL is
///   [`Location::Local`]. A `file:` URL must be absolute (empty host or
///   `localhost`); `%XX` escapes in it are decoded.
/// - `s3://bucket/key` is [`Location::S3`]. The bucket is required; the key
///   (an object, a "directory" prefix, or a glob) may be empty (the whole
///   bucket). The key is taken literally (no `%XX` decoding, like the AWS
///   CLI), without leading or trailing `/`.
/// - Any other `scheme://` is refused, naming the URL. (A relative local
///   path that looks like a URL can be written `./scheme://...`.)
///
/// `Display` gives back a canonical string that parses to the same
/// location: a local path as it was given (a relative path stays relative),
/// an S3 location as `s3://bucket/key`. That string is what a job plan
/// carries ([`quern_core::InputFile::location`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A path on the local (or shared) file system.
    Local(PathBuf),
    /// An object, prefix or key pattern in an S3 bucket.
    S3 {
        /// The bucket (never empty).
        bucket: String,
        /// The key, without leading or trailing `/` (empty: the bucket's
        /// root).
        key: String,
    },
}

/// Whether `s` starts like a URL: `scheme://` with an RFC 3986 scheme.
fn url_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn bad(location: &str, message: impl Into<String>) -> StorageError {
    StorageError::BadLocation { location: location.to_owned(), message: message.into() }
}

impl Location {
    /// Parses a location as a user gives it (see [`Location`]).
    /// Errors name the string and say what is wrong.
    pub fn parse(s: &str) -> Result<Location, StorageError> {
        if s.is_empty() {
            return Err(bad(s, "an empty location names nothing"));
        }
        let Some((scheme, rest)) = url_scheme(s) else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(bad(s, "a file URL needs an absolute path: file:///abs/path"));
                }
                let decoded =
                    percent_decode(path).ok_or_else(|| bad(s, "a bad %XX escape, or not UTF-8 once decoded"))?;
                Ok(Location::Local(PathBuf::from(decoded)))
            }
            "s3" => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad(s, "the URL names no bucket: write s3://BUCKET/key"));
                }
                if !bucket.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
                    return Err(bad(
                        s,
                        format!("'{bucket}' is not a bucket name (letters, digits, '.', '-' and '_' only)"),
                    ));
                }
                let key = key.trim_start_matches('/').trim_end_matches('/');
                if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !key.is_empty() {
                    return Err(bad(s, "the key has an empty, '.' or '..' segment"));
                }
                if key.chars().any(char::is_control) {
                    return Err(bad(s, "the key has a control character"));
                }
                Ok(Location::S3 { bucket: bucket.to_owned(), key: key.to_owned() })
            }
            other => {
                Err(bad(s, format!("unsupported scheme '{other}': quern reads local paths, file:// and s3:// URLs")))
            }
        }
    }

    /// The local path, if the location is local.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::S3 { .. } => None,
        }
    }

    /// Whether the location is on the local file system.
    pub fn is_local(&self) -> bool {
        self.as_local().is_some()
    }

    /// Whether `s` is written as a URL (`s3://…`, `file://…`; any
    /// `scheme://`) rather than as a plain path.
    pub fn is_url(s: &str) -> bool {
        url_scheme(s).is_some()
    }

    /// The location of `name` under this one: `PREFIX/name`, or `DIR/name`.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(path) => Location::Local(path.join(name)),
            Location::S3 { bucket, key } if key.is_empty() => {
                Location::S3 { bucket: bucket.clone(), key: name.to_owned() }
            }
            Location::S3 { bucket, key } => Location::S3 { bucket: bucket.clone(), key: format!("{key}/{name}") },
        }
    }

    /// The location as a URL that any process parses back to the same
    /// place: `s3://bucket/key`, or `file:///abs/path` for a local one (a
    /// relative path is made absolute against the current directory; `%`
    /// is escaped). Fails only if the current directory cannot be known
    /// or the path is not UTF-8.
    pub fn to_url(&self) -> Result<String, StorageError> {
        match self {
            Location::S3 { .. } => Ok(self.to_string()),
            Location::Local(path) => {
                let shown = path.display().to_string();
                let absolute = std::path::absolute(path).map_err(|e| bad(&shown, e.to_string()))?;
                let text = absolute.to_str().ok_or_else(|| bad(&shown, "the path is not valid UTF-8"))?;
                Ok(format!("file://{}", text.replace('%', "%25")))
            }
        }
    }
}

impl FromStr for Location {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Location, StorageError> {
        Location::parse(s)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => {
                let shown = path.display().to_string();
                // A relative path that would read as a URL keeps its meaning
                // when parsed again.
                if url_scheme(&shown).is_some() { write!(f, "./{shown}") } else { f.write_str(&shown) }
            }
            Location::S3 { bucket, key } if key.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, key: &str) -> Location {
        Location::S3 { bucket: bucket.into(), key: key.into() }
    }

    fn refused(s: &str) -> String {
        let e = Location::parse(s).expect_err(s);
        let message = e.to_string();
        assert!(message.contains(s), "the error does not name {s}: {message}");
        assert!(e.is_refusal(), "{message}");
        message
    }

    #[test]
    fn plain_paths_and_file_urls_are_local() {
        assert_eq!(Location::parse("books/a.txt").expect("relative"), Location::Local("books/a.txt".into()));
        assert_eq!(Location::parse("/data/in").expect("absolute"), Location::Local("/data/in".into()));
        assert_eq!(Location::parse("file:///data/in").expect("file URL"), Location::Local("/data/in".into()));
        assert_eq!(
            Location::parse("file://localhost/data/my%20books").expect("localhost"),
            Location::Local("/data/my books".into())
        );
        assert_eq!(Location::parse("FILE:///x").expect("scheme case"), Location::Local("/x".into()));
        assert_eq!(Location::parse("logs/*.txt").expect("glob"), Location::Local("logs/*.txt".into()));
        // Not a URL: no `//`, or not a scheme before it.
        assert_eq!(Location::parse("s3:/x").expect("no //"), Location::Local("s3:/x".into()));
        assert_eq!(Location::parse("./s3://x").expect("dot"), Location::Local("./s3://x".into()));
        assert!(Location::parse("a.txt").expect("local").is_local());
    }

    #[test]
    fn s3_urls_need_a_bucket_and_keep_the_key_literally() {
        assert_eq!(Location::parse("s3://b").expect("bucket"), s3("b", ""));
        assert_eq!(Location::parse("s3://b/").expect("bucket/"), s3("b", ""));
        assert_eq!(Location::parse("s3://my-bucket.1/logs/a.txt").expect("key"), s3("my-bucket.1", "logs/a.txt"));
        assert_eq!(Location::parse("s3://b/logs/").expect("prefix/"), s3("b", "logs"));
        assert_eq!(Location::parse("s3://b/a%20b").expect("literal"), s3("b", "a%20b"));
        assert_eq!(Location::parse("s3://b/logs/*.txt").expect("glob"), s3("b", "logs/*.txt"));
        assert_eq!(Location::parse("S3://b/k").expect("scheme case"), s3("b", "k"));
        assert!(!s3("b", "k").is_local());
        assert_eq!(s3("b", "k").as_local(), None);

        assert!(refused("s3://").contains("no bucket"));
        assert!(refused("s3:///key").contains("no bucket"));
        assert!(refused("s3://bad bucket/k").contains("not a bucket name"));
        assert!(refused("s3://b/a//c").contains("empty"));
        assert!(refused("s3://b/a/../c").contains("'..'"));
        assert!(refused("s3://b/a\u{7}").contains("control"));
    }

    #[test]
    fn other_schemes_and_bad_file_urls_are_refused_naming_the_url() {
        assert!(refused("gs://bucket/key").contains("unsupported scheme 'gs'"));
        assert!(refused("https://example.com/a.txt").contains("unsupported scheme 'https'"));
        assert!(refused("file://relative/path").contains("absolute"));
        assert!(refused("file:///a%2").contains("escape"));
        assert!(refused("file:///a%ff").contains("UTF-8"));
        assert!(Location::parse("").expect_err("empty").to_string().contains("empty"));
    }

    #[test]
    fn urls_are_told_from_paths_joined_and_made_absolute() {
        assert!(Location::is_url("s3://b/k") && Location::is_url("file:///x"));
        assert!(!Location::is_url("/tmp/x") && !Location::is_url("s3:/x"));
        assert_eq!(s3("b", "").join("j"), s3("b", "j"));
        assert_eq!(s3("b", "p/q").join("j"), s3("b", "p/q/j"));
        assert_eq!(Location::Local("/d".into()).join("j"), Location::Local("/d/j".into()));
        assert_eq!(s3("b", "p").to_url().expect("url"), "s3://b/p");
        let odd = Location::Local("/data/100%/x y".into());
        let url = odd.to_url().expect("url");
        assert_eq!(url, "file:///data/100%25/x y");
        assert_eq!(Location::parse(&url).expect("parse"), odd);
        let relative = Location::Local("rel/dir".into()).to_url().expect("url");
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(Location::parse(&relative).expect("parse"), Location::Local(cwd.join("rel/dir")));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (given, shown) in [
            ("books", "books"),
            ("/data/in.txt", "/data/in.txt"),
            ("file:///data/in.txt", "/data/in.txt"),
            ("s3://b", "s3://b"),
            ("s3://b/", "s3://b"),
            ("s3://b//logs//", "s3://b/logs"),
            ("s3://b/logs/a.txt", "s3://b/logs/a.txt"),
            ("./s3://x", "./s3://x"),
        ] {
            let location = Location::parse(given).expect(given);
            assert_eq!(location.to_string(), shown, "{given}");
            assert_eq!(Location::parse(shown).expect(shown), location, "{shown} parses back");
        }
        // A local path built in code that looks like a URL is shown so that
        // it parses back to itself.
        let odd = Location::Local("s3://x".into());
        assert_eq!(odd.to_string(), "./s3://x");
        assert_eq!(odd.to_string().parse::<Location>().expect("parse").as_local(), Some(Path::new("./s3://x")));
    }
}
