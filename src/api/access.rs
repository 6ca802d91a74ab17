//! Who may call which route. Routes are only added through [`Routes`], which
//! makes each one declare its access; the [`authorise`] layer looks the
//! matched route up and refuses, so a route without a declared role cannot
//! exist, and the role matrix test walks the same table.
//!
//! Credentials: `Authorization: Bearer <API key or session token>`, or the
//! workspace's `kefu_session` cookie (HttpOnly, SameSite=Strict). With no key
//! configured at all, loopback clients are served as admins and nobody else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, ApiError, AppState};
use crate::access::{Caller, Role};
use crate::service::auth::AuthError;
use crate::service::widget::{Visitor, WidgetError};

/// Name of the workspace's session cookie.
pub const SESSION_COOKIE: &str = "kefu_session";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, readiness, login: no credentials.
    Public,
    /// Callers with at least this role.
    Role(Role),
    /// A web chat visitor: a visitor token kefu signed (`X-Kefu-Visitor`
    /// header, or `visitor` in the query for `EventSource`), and the shop's
    /// customer token when logged in (`X-Kefu-Customer`, `customer_token`).
    Visitor,
    /// A messaging platform's callback: the platform's own signature, which
    /// the handler checks (API keys and sessions grant nothing here).
    Platform,
}

/// One route as declared.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// The API key may also come as `?token=` or as the JSON body's
    /// `"token"`, as Rasa's clients send it. Such URLs must never be logged whole.
    pub rasa_token: bool,
}

type AppRouter = Router<Arc<AppState>>;

/// A router whose every route declares its access.
pub(super) struct Routes {
    router: AppRouter,
    specs: Vec<RouteSpec>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes { router: Router::new(), specs: Vec::new() }
    }

    fn add(mut self, method: Method, path: &'static str, access: Access, route: MethodRouter<Arc<AppState>>) -> Routes {
        self.router = self.router.route(path, route);
        self.specs.push(RouteSpec { method, path, access, rasa_token: false });
        self
    }

    /// Lets the route added last take its API key the way Rasa's clients send it too.
    pub fn rasa_token(mut self) -> Routes {
        if let Some(spec) = self.specs.last_mut() {
            spec.rasa_token = true;
        }
        self
    }

    pub fn get<H, T>(self, path: &'static str, access: Access, handler: H) -> Routes
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(Method::GET, path, access, axum::routing::get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, access: Access, handler: H) -> Routes
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(Method::POST, path, access, axum::routing::post(handler))
    }

    /// Wraps the routes so far in `layer` (time limits, body limits).
    pub fn wrap(mut self, layer: impl FnOnce(AppRouter) -> AppRouter) -> Routes {
        self.router = layer(self.router);
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self
    }

    #[cfg(test)]
    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    /// The router with every route behind [`authorise`].
    pub fn into_router(self, state: &Arc<AppState>) -> AppRouter {
        let table = Arc::new(self.specs);
        self.router
            .route_layer(middleware::from_fn_with_state((state.clone(), table), authorise))
            // Outermost, so refusals and time-outs are counted too.
            .route_layer(middleware::from_fn(super::metrics::record))
    }
}

type RouteTable = Arc<Vec<RouteSpec>>;

/// The session token or API key a request carries.
fn credentials(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| session_cookie(headers))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Finds the caller, checks the route's access and the caller's rate, and
/// hands the caller to the handler.
async fn authorise(
    State((state, table)): State<(Arc<AppState>, RouteTable)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    // HEAD is served by the GET route.
    let method = if request.method() == Method::HEAD { Method::GET } else { request.method().clone() };
    let on_path: Vec<&RouteSpec> = table.iter().filter(|s| s.path == path).collect();
    let Some(spec) = on_path.iter().find(|s| s.method == method) else {
        if !on_path.is_empty() {
            let allowed: Vec<&str> = on_path.iter().map(|s| s.method.as_str()).collect();
            let message = format!("{path} takes {}", allowed.join(", "));
            return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message));
        }
        // Routes are only added with their access, so this is a bug; refuse rather than serve it open.
        tracing::error!(%path, "route without a declared access");
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route declares no access"));
    };
    let needed = match spec.access {
        Access::Public | Access::Platform => return Ok(next.run(request).await),
        Access::Visitor => {
            let visitor = visitor(&state, &request)?;
            state.gate.spend_as(&format!("visitor:{}", visitor.visitor_id))?;
            request.extensions_mut().insert(visitor);
            return Ok(next.run(request).await);
        }
        Access::Role(needed) => needed,
    };
    let mut token = credentials(request.headers());
    if token.is_none() && spec.rasa_token {
        let rasa;
        (rasa, request) = rasa_token(request, state.settings.max_body_bytes).await?;
        token = rasa;
    }
    let caller = match token {
        Some(token) => state.gate.caller(&token).await?,
        None => {
            let client = state.settings.trusted_proxies.unproxied_client(request.headers(), request.extensions());
            state.gate.anonymous(client).await?
        }
    };
    if caller.role() < needed {
        return Err(AuthError::Forbidden {
            have: caller.role(),
            need: needed,
            what: format!("{} {path}", request.method()),
        }
        .into());
    }
    state.gate.spend(&caller)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The key of a Rasa client: `?token=` (Rasa's server convention) or the
/// JSON body's `"token"` (what Rasa's NLU client posts); the request is
/// rebuilt around the body it read.
async fn rasa_token(request: Request, max_body_bytes: usize) -> Result<(Option<String>, Request), ApiError> {
    if let Some(token) = query_param(&request, "token") {
        return Ok((Some(token), request));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, max_body_bytes)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "bad_body", "the body is too large"))?;
    let token = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["token"].as_str().map(str::to_string));
    Ok((token, Request::from_parts(parts, axum::body::Body::from(bytes))))
}

/// The value of a query parameter of `request`.
fn query_param(request: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The web chat visitor a request names, its tokens checked.
fn visitor(state: &AppState, request: &Request) -> Result<Visitor, ApiError> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let param = |name: &str| query_param(request, name);
    let token = header(VISITOR_HEADER).or_else(|| param("visitor")).ok_or(WidgetError::BadVisitor)?;
    let customer = header(CUSTOMER_HEADER).or_else(|| param("customer_token"));
    Ok(state.widgets.identify(&token, customer.as_deref(), chrono::Utc::now().timestamp())?)
}

/// Headers the web chat names its visitor and customer with.
pub const VISITOR_HEADER: &str = "x-kefu-visitor";
pub const CUSTOMER_HEADER: &str = "x-kefu-customer";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    agent: String,
    password: String,
}

/// `POST /v1/auth/login {"agent", "password"}`: a session as a cookie for the
/// workspace and as a bearer token for scripts.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: LoginRequest = parse_json(body)?;
    let client = state.settings.trusted_proxies.client(&parts.headers, &parts.extensions);
    let session = state.gate.login(&req.agent, &req.password, client).await?;
    let max_age = (session.expires_at - chrono::Utc::now()).num_seconds().max(0);
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", session.token);
    let body = json!({
        "token": session.token,
        "agent": session.agent,
        "role": session.role,
        "expires_at": session.expires_at,
    });
    Ok(with_cookie(Json(body).into_response(), &cookie))
}

/// `POST /v1/auth/logout`: ends the session of the cookie or bearer token.
pub(super) async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = credentials(&headers) {
        state.gate.logout(&token).await?;
    }
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok(with_cookie(Json(json!({"logged_out": true})).into_response(), &cookie))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    // NOTE: the cookie holds base64url and fixed text only, always a valid header value.
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /v1/auth/me`: who the credentials name.
pub(super) async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    let (kind, name) = match &caller {
        Caller::Key { id, .. } => ("key", id.as_str()),
        Caller::Agent { name, .. } => ("agent", name.as_str()),
        Caller::Local => ("local", "local"),
    };
    Json(json!({"kind": kind, "name": name, "role": caller.role(), "actor": caller.actor()}))
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Unauthenticated(_) | AuthError::BadLogin => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            AuthError::Forbidden { .. } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            AuthError::LoopbackOnly => ApiError::new(StatusCode::FORBIDDEN, "protected_mode", message),
            AuthError::RateLimited { retry_after_secs } | AuthError::LoginThrottled { retry_after_secs } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).retry_after(retry_after_secs)
            }
            AuthError::Invalid(_) => ApiError::bad_request("invalid_request", message),
            AuthError::Unknown { .. } => ApiError::not_found(message),
            AuthError::Store(e) => e.into(),
        }
    }
}
