//! The dashboard: plain HTML, CSS and ES modules (no build step, no CDN),
//! built into the binary and served at `/` and `/assets/…`, so it works
//! offline. Every page talks to the API under `/api/v1` like any other
//! client; a strict Content-Security-Policy allows nothing but this origin.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Each asset: its path under `assets/`, its bytes.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../assets/", $path)))),*]
    };
}

/// Every file `assets/FILES` lists (a test keeps the two the same).
const ASSETS: &[(&str, &str)] = assets![
    "app.css",
    "favicon.svg",
    "index.html",
    "js/api.js",
    "js/components.js",
    "js/dom.js",
    "js/format.js",
    "js/live.js",
    "js/main.js",
    "js/pages/job.js",
    "js/pages/jobs.js",
    "js/pages/login.js",
    "js/pages/submit.js",
    "js/pages/task.js",
    "js/pages/users.js",
    "js/pages/workers.js",
    "js/router.js",
    "js/taskgrid.js",
    "js/timeline.js",
];

/// Only this origin's scripts, styles, images and API; no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Response {
    let Some((_, body)) = ASSETS.iter().find(|(p, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n")
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type(path))),
            // Names carry no version: check before reusing.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        *body,
    )
        .into_response()
}

/// The dashboard's page.
pub(crate) async fn index() -> Response {
    serve("index.html")
}

/// One of its files.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_file_is_built_in_and_nothing_else() {
        let listed: Vec<&str> = include_str!("../assets/FILES").lines().filter(|l| !l.trim().is_empty()).collect();
        let built: Vec<&str> = ASSETS.iter().map(|(p, _)| *p).collect();
        assert_eq!(built, listed, "assets/FILES and dashboard.rs's ASSETS differ");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        for entry in walk(&root) {
            let relative = entry.strip_prefix(&root).expect("under assets").to_string_lossy().into_owned();
            if relative != "FILES" {
                on_disk.push(relative);
            }
        }
        on_disk.sort();
        assert_eq!(on_disk, listed, "a file in assets/ is not listed in FILES (or the other way)");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("assets") {
            let path = entry.expect("entry").path();
            if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
        }
        out
    }

    #[test]
    fn files_have_their_types_and_unknown_ones_are_404() {
        assert_eq!(content_type("js/main.js"), "text/javascript; charset=utf-8");
        assert_eq!(serve("index.html").status(), StatusCode::OK);
        let response = serve("js/main.js");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(response.headers()[header::CONTENT_SECURITY_POLICY].to_str().is_ok_and(|v| v.contains("'self'")));
        assert_eq!(serve("../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
