//! The demo page (`clients/js/demo/`) at [`PATH`]: connection state, a chat room with presence
//! and a typing indicator, and a notifications panel. The files are compiled into the binary
//! (`demo/app.js` is the committed bundle of the page's script and the client library), so
//! running the stack needs no Node. The page asks this stack's `POST /negotiate` for its tokens.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::stack::Stack;

/// Where the page is served, e.g. `http://127.0.0.1:3001/demo/`.
pub const PATH: &str = "/demo/";

/// The user the banner's demo link and curl line are for.
pub const USER: &str = "dev-user";

/// The message the banner's curl line sends that user.
pub const NOTIFICATION: &str = "your download is ready";

/// Name, content type and contents of every file the page loads; nothing else is served.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../clients/js/demo/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../clients/js/demo/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../clients/js/demo/app.js"),
    ),
];

/// The page may talk to any WebSocket or negotiate endpoint it is configured with (`?url=`,
/// `?negotiate=`), but loads code and styles only from here and cannot be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss: http: https:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /demo/` and `GET /demo/{file}`, merged into the stack's router.
/// Whether a request is for the demo page's static files: public even on an
/// exposed stack (the page asks negotiate for tokens, which needs the key there).
pub(crate) fn is_demo_page(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::GET && path.starts_with(PATH)
}

pub(crate) fn routes() -> Router<Arc<Stack>> {
    Router::new()
        .route(PATH, get(|| async { file("index.html") }))
        .route(
            "/demo/{file}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(file, _, _)| *file == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the demo page\n").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            // The page changes with the binary; a stale app.js against a new index.html would break it.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        *body,
    )
        .into_response()
}
