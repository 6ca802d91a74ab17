//! The pages kefu serves from its binary (plain HTML, CSS and JS; nothing
//! loaded from elsewhere): the web chat widget and its demo shop page, and
//! the agents' workspace and its dashboard for managers.

use axum::http::header;
use axum::response::IntoResponse;

use super::access::{Access, Routes};

/// The workspace may only talk to this server, and nobody may frame it.
const WORKSPACE_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/chat", Access::Public, || page("text/html; charset=utf-8", include_str!("pages/chat.html")))
        .get("/widget.js", Access::Public, || page("text/javascript; charset=utf-8", include_str!("pages/widget.js")))
        .get("/console", Access::Public, || workspace("text/html; charset=utf-8", include_str!("pages/console.html")))
        .get("/console.js", Access::Public, || {
            workspace("text/javascript; charset=utf-8", include_str!("pages/console.js"))
        })
        .get("/console.css", Access::Public, || workspace("text/css; charset=utf-8", include_str!("pages/console.css")))
        .get("/console/dashboard", Access::Public, || {
            workspace("text/html; charset=utf-8", include_str!("pages/dashboard.html"))
        })
        .get("/dashboard.js", Access::Public, || {
            workspace("text/javascript; charset=utf-8", include_str!("pages/dashboard.js"))
        })
        .get("/dashboard.css", Access::Public, || {
            workspace("text/css; charset=utf-8", include_str!("pages/dashboard.css"))
        })
}

/// A page, revalidated on every load so an upgrade shows at once.
async fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

async fn workspace(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, WORKSPACE_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}
