//! The Stripe-compatible `/v1` API: one entry point that does what Stripe does for every
//! request, in Stripe's order, then the route table.
//!
//! Order per request: `Request-Id` → authentication (401) → rate limiter and injected 429s
//! (nothing saved) → parameters (400) → route (404) → for POSTs with an `Idempotency-Key`: claim,
//! replay, mismatch or 409 → latency → injected 5xx before commit (key released) → validation
//! (400, key released) → execution under the account lock → injected 5xx or a dropped
//! connection after commit → the response saved under the key.

mod customers;
mod payment_intents;
mod payment_methods;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use crate::account::{Account, RequestCtx, new_id};
use crate::error::{ApiError, RateLimitedReason};
use crate::faults::AfterCommit;
use crate::form::{self, Params};
use crate::idempotency::{Claim, SavedResponse, fingerprint};
use crate::objects::PendingEvent;
use crate::server::DropConnection;
use crate::{App, auth};

/// Request bodies larger than this are refused (Stripe's own limit is far above what any
/// request of this subset needs).
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) fn ok(v: Value) -> Result<Value, ApiError> {
    Ok(v)
}

/// `metadata`, checked against Stripe's limits (flint-shared's rules).
pub(crate) fn metadata(p: &mut Params) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(map) = p.string_map("metadata")? else {
        return Ok(None);
    };
    // Empty values mean "delete this key" in updates; they do not count against limits.
    let counted: BTreeMap<String, String> = map
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    flint_shared::metadata::Metadata::new(counted).map_err(|e| {
        ApiError::invalid_param(e.param(), Some("parameter_invalid_string"), e.to_string())
    })?;
    Ok(Some(map))
}

pub(crate) fn email(p: &mut Params) -> Result<Option<String>, ApiError> {
    let name = p.name("email");
    match p.string("email")? {
        Some(e) if !e.contains('@') || e.len() > 512 => Err(ApiError::invalid_param(
            name,
            Some("email_invalid"),
            format!("Invalid email address: {e}"),
        )),
        other => Ok(other),
    }
}

pub(crate) fn receipt_email(p: &mut Params) -> Result<Option<String>, ApiError> {
    match p.string("receipt_email")? {
        Some(e) if !e.contains('@') => Err(ApiError::invalid_param(
            "receipt_email",
            Some("email_invalid"),
            format!("Invalid email address: {e}"),
        )),
        other => Ok(other),
    }
}

/// `expand[]`, each entry one of `allowed`.
pub(crate) fn expand_list(p: &mut Params, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let expand = p.string_list("expand")?.unwrap_or_default();
    if let Some(bad) = expand.iter().find(|e| !allowed.contains(&e.as_str())) {
        return Err(ApiError::invalid_param(
            "expand",
            None,
            format!("This property cannot be expanded ({bad})."),
        ));
    }
    Ok(expand)
}

/// `limit` (1–100, default 10), `starting_after`, `ending_before`.
pub(crate) fn list_params(
    p: &mut Params,
) -> Result<(usize, Option<String>, Option<String>), ApiError> {
    let limit = match p.integer("limit")? {
        None => 10,
        Some(n @ 1..=100) => usize::try_from(n).unwrap_or(10),
        Some(n) => {
            return Err(ApiError::invalid_param(
                "limit",
                Some("parameter_invalid_integer"),
                format!("Invalid limit: {n}. This value must be between 1 and 100."),
            ));
        }
    };
    let starting_after = p.string("starting_after")?;
    let ending_before = p.string("ending_before")?;
    if starting_after.is_some() && ending_before.is_some() {
        return Err(ApiError::invalid_param(
            "ending_before",
            None,
            "You may only specify one of these parameters: ending_before, starting_after.",
        ));
    }
    Ok((limit, starting_after, ending_before))
}

/// A parsed, validated request, ready to run against an account.
#[derive(Debug)]
enum Op {
    CreateCustomer(customers::CreateCustomer),
    RetrieveCustomer(String, Vec<String>),
    UpdateCustomer(String, customers::UpdateCustomer),
    DeleteCustomer(String),
    CreatePaymentMethod(payment_methods::CreatePaymentMethod),
    RetrievePaymentMethod(String, Vec<String>),
    AttachPaymentMethod(String, String, Vec<String>),
    DetachPaymentMethod(String, Vec<String>),
    ListPaymentMethods(Option<String>, payment_methods::ListPaymentMethods),
    RetrieveCustomerPaymentMethod(String, String),
    CreateIntent(payment_intents::CreateIntent),
    RetrieveIntent(String, Vec<String>),
    ConfirmIntent(String, payment_intents::ConfirmOptions),
    CancelIntent(String, Option<String>, Vec<String>),
    ListIntents(payment_intents::ListIntents),
    RetrieveCharge(String),
    RetrieveEvent(String),
}

fn no_params(p: Params) -> Result<(), ApiError> {
    p.finish()
}

/// The route table: `None` when Stripe would answer "Unrecognized request URL".
fn route(method: &Method, segments: &[&str], p: Params) -> Option<Result<Op, ApiError>> {
    let own = |s: &&str| (*s).to_owned();
    let op =
        match (method.as_str(), segments) {
            ("POST", ["customers"]) => customers::parse_create(p).map(Op::CreateCustomer),
            ("GET", ["customers", id]) => {
                customers::parse_retrieve(p).map(|e| Op::RetrieveCustomer(own(id), e))
            }
            ("POST", ["customers", id]) => {
                customers::parse_update(p).map(|r| Op::UpdateCustomer(own(id), r))
            }
            ("DELETE", ["customers", id]) => no_params(p).map(|()| Op::DeleteCustomer(own(id))),
            ("GET", ["customers", id, "payment_methods"]) => payment_methods::parse_list(p, false)
                .map(|r| Op::ListPaymentMethods(Some(own(id)), r)),
            ("GET", ["customers", id, "payment_methods", pm]) => {
                no_params(p).map(|()| Op::RetrieveCustomerPaymentMethod(own(id), own(pm)))
            }
            ("POST", ["payment_methods"]) => {
                payment_methods::parse_create(p).map(Op::CreatePaymentMethod)
            }
            ("GET", ["payment_methods"]) => {
                payment_methods::parse_list(p, true).map(|r| Op::ListPaymentMethods(None, r))
            }
            ("GET", ["payment_methods", id]) => {
                payment_methods::parse_retrieve(p).map(|e| Op::RetrievePaymentMethod(own(id), e))
            }
            ("POST", ["payment_methods", id, "attach"]) => payment_methods::parse_attach(p)
                .map(|(c, e)| Op::AttachPaymentMethod(own(id), c, e)),
            ("POST", ["payment_methods", id, "detach"]) => {
                payment_methods::parse_retrieve(p).map(|e| Op::DetachPaymentMethod(own(id), e))
            }
            ("POST", ["payment_intents"]) => payment_intents::parse_create(p).map(Op::CreateIntent),
            ("GET", ["payment_intents"]) => payment_intents::parse_list(p).map(Op::ListIntents),
            ("GET", ["payment_intents", id]) => {
                payment_intents::parse_retrieve(p).map(|e| Op::RetrieveIntent(own(id), e))
            }
            ("POST", ["payment_intents", id, "confirm"]) => {
                payment_intents::parse_confirm(p).map(|o| Op::ConfirmIntent(own(id), o))
            }
            ("POST", ["payment_intents", id, "cancel"]) => {
                payment_intents::parse_cancel(p).map(|(r, e)| Op::CancelIntent(own(id), r, e))
            }
            ("GET", ["charges", id]) => no_params(p).map(|()| Op::RetrieveCharge(own(id))),
            ("GET", ["events", id]) => no_params(p).map(|()| Op::RetrieveEvent(own(id))),
            _ => return None,
        };
    Some(op)
}

fn run(op: Op, account: &mut Account, ctx: &RequestCtx) -> Result<Value, ApiError> {
    match op {
        Op::CreateCustomer(r) => account.create_customer(r, ctx),
        Op::RetrieveCustomer(id, e) => account.retrieve_customer(&id, &e),
        Op::UpdateCustomer(id, r) => account.update_customer(&id, r),
        Op::DeleteCustomer(id) => account.delete_customer(&id),
        Op::CreatePaymentMethod(r) => account.create_payment_method(r),
        Op::RetrievePaymentMethod(id, e) => account.retrieve_payment_method(&id, &e),
        Op::AttachPaymentMethod(id, customer, e) => {
            account.attach_payment_method(&id, &customer, &e, ctx)
        }
        Op::DetachPaymentMethod(id, e) => account.detach_payment_method(&id, &e),
        Op::ListPaymentMethods(customer, r) => {
            account.list_payment_methods(customer.as_deref(), &r)
        }
        Op::RetrieveCustomerPaymentMethod(customer, id) => {
            account.retrieve_customer_payment_method(&customer, &id)
        }
        Op::CreateIntent(r) => account.create_intent(r, ctx),
        Op::RetrieveIntent(id, e) => account.retrieve_intent(&id, &e),
        Op::ConfirmIntent(id, o) => account.confirm_intent(&id, o, ctx),
        Op::CancelIntent(id, reason, e) => account.cancel_intent(&id, reason, &e, ctx),
        Op::ListIntents(r) => account.list_intents(&r),
        Op::RetrieveCharge(id) => account.retrieve_charge(&id),
        Op::RetrieveEvent(id) => account
            .events
            .get(&id)
            .and_then(|e| serde_json::from_str(&e.body).ok())
            .ok_or_else(|| ApiError::no_such("event", &id)),
    }
}

/// Headers every `/v1` response carries.
struct Common {
    request_id: String,
    stripe_version: String,
    idempotency_key: Option<String>,
}

fn saved(result: &Result<Value, ApiError>) -> SavedResponse {
    match result {
        Ok(v) => SavedResponse {
            status: StatusCode::OK,
            body: Bytes::from(v.to_string()),
            should_retry: None,
        },
        Err(e) => SavedResponse {
            status: e.status,
            body: Bytes::from(e.body().to_string()),
            should_retry: e.should_retry,
        },
    }
}

fn respond(
    common: &Common,
    saved: SavedResponse,
    replayed: bool,
    rate_limited_reason: Option<RateLimitedReason>,
) -> Response {
    let mut response = Response::new(Body::from(saved.body));
    *response.status_mut() = saved.status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    insert_text(h, "request-id", &common.request_id);
    insert_text(h, "stripe-version", &common.stripe_version);
    if let Some(key) = &common.idempotency_key {
        insert_text(h, "idempotency-key", key);
    }
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(retry) = saved.should_retry {
        h.insert(
            "stripe-should-retry",
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
    }
    if let Some(reason) = rate_limited_reason {
        h.insert(
            "stripe-rate-limited-reason",
            HeaderValue::from_static(reason.as_str()),
        );
    }
    response
}

fn insert_text(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn error_response(common: &Common, e: &ApiError) -> Response {
    respond(common, saved(&Err(e.clone())), false, e.rate_limited_reason)
}

/// Entry point for every request that is not a `/__sandbox` control route.
pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    app.faults
        .received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let mut common = Common {
        request_id: new_id("req"),
        stripe_version: parts
            .headers
            .get("stripe-version")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| app.config.stripe_version.clone(), str::to_owned),
        idempotency_key: None,
    };
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();

    let (account_index, account) = match auth::authenticate(&app, &parts.headers) {
        Ok(found) => found,
        Err(e) => return error_response(&common, &e),
    };
    if let Err(e) = app
        .faults
        .throttle(account_index)
        .and_then(|()| app.faults.too_many_requests(&path))
    {
        return error_response(&common, &e);
    }

    let params = match read_params(&method, &parts.headers, parts.uri.query(), body).await {
        Ok(p) => p,
        Err(e) => return error_response(&common, &e),
    };
    let canonical = params.canonical();
    let segments: Vec<&str> = match path.strip_prefix("/v1/") {
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(),
    };
    let Some(parsed) = route(&method, &segments, params) else {
        return error_response(&common, &ApiError::unrecognized_url(method.as_str(), &path));
    };

    let is_post = method == Method::POST;
    let key = if is_post {
        idempotency_key(&parts.headers)
    } else {
        Ok(None)
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => return error_response(&common, &e),
    };
    common.idempotency_key = key.clone();
    // The request runs on its own task, so that it completes (and its result is saved under its
    // key) even when the client goes away mid-request — as Stripe's servers do. Cancelling it
    // with the connection would leave its idempotency key claimed forever.
    let work = execute(
        Arc::clone(&app),
        account,
        common,
        key,
        method,
        path,
        canonical,
        parsed,
        is_post,
    );
    match tokio::spawn(work).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "sandbox request task failed");
            let mut response = Response::new(Body::from(
                ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR)
                    .body()
                    .to_string(),
            ));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Everything after routing: idempotency, latency and faults, execution, the saved answer.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one request, moved onto its own task"
)]
async fn execute(
    app: Arc<App>,
    account: Arc<Mutex<Account>>,
    common: Common,
    key: Option<String>,
    method: Method,
    path: String,
    canonical: String,
    parsed: Result<Op, ApiError>,
    is_post: bool,
) -> Response {
    if let Some(key) = &key {
        let fp = fingerprint(method.as_str(), &path, &canonical);
        let claim = lock(&account)
            .idempotency
            .claim(key, fp, app.retention, Instant::now());
        match claim {
            Claim::Claimed => {}
            Claim::Replay(saved) => return respond(&common, saved, true, None),
            Claim::Mismatch => {
                return error_response(&common, &ApiError::idempotency_mismatch(key));
            }
            Claim::InFlight => return error_response(&common, &ApiError::idempotency_key_in_use()),
        }
    }
    // From here on a claimed key must be completed or released on every path.
    let release = |account: &Mutex<Account>| {
        if let Some(key) = &key {
            lock(account).idempotency.release(key);
        }
    };

    let latency = app.faults.latency(&path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(e) = app.faults.before_commit(&path) {
        release(&account);
        return error_response(&common, &e);
    }
    let op = match parsed {
        Ok(op) => op,
        Err(e) => {
            release(&account);
            return error_response(&common, &e);
        }
    };

    let ctx = RequestCtx {
        request_id: common.request_id.clone(),
        idempotency_key: key.clone(),
        api_version: common.stripe_version.clone(),
        strict_attach: app.config.strict_attach,
    };
    let after = if is_post {
        app.faults.after_commit(&path)
    } else {
        AfterCommit::Answer
    };
    // The account is locked for the work itself; the answer and the events are serialised
    // after, and the key completed (it stays claimed, so in flight, meanwhile).
    let (result, pending) = {
        let mut acct = lock(&account);
        let result = run(op, &mut acct, &ctx);
        (result, std::mem::take(&mut acct.outbox))
    };
    let answer = match after {
        AfterCommit::ServerError(status) => saved(&Err(ApiError::server_error(status))),
        AfterCommit::Answer | AfterCommit::DropConnection => saved(&result),
    };
    let events: Vec<_> = pending.into_iter().map(PendingEvent::render).collect();
    {
        let mut acct = lock(&account);
        if let Some(key) = &key {
            acct.idempotency.complete(key, answer.clone());
        }
        acct.record(&events);
    }
    app.webhooks.send(events);
    if after == AfterCommit::DropConnection {
        tracing::debug!(request_id = %common.request_id, "dropping the connection after commit (fault injection)");
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(DropConnection);
        return response;
    }
    respond(&common, answer, false, None)
}

fn lock(account: &Mutex<Account>) -> std::sync::MutexGuard<'_, Account> {
    account.lock().unwrap_or_else(|e| e.into_inner())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::invalid_request(
            None,
            "Invalid Idempotency-Key header: it must be printable ASCII.",
        )
    })?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid_request(
            None,
            format!(
                "Invalid Idempotency-Key: it must be between 1 and 255 characters long, got {}.",
                key.len()
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

async fn read_params(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Params, ApiError> {
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::invalid_request(
            None,
            format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
        )
    })?;
    let from_query = form::parse(query.unwrap_or("").as_bytes())?;
    if method == Method::GET || method == Method::DELETE {
        return Ok(from_query);
    }
    if !from_query.is_empty() {
        return Err(ApiError::invalid_request(
            None,
            "Parameters of POST requests must be sent in the request body (application/x-www-form-urlencoded), not the query string.",
        ));
    }
    if !bytes.is_empty() {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return Err(ApiError::invalid_request(
                None,
                format!(
                    "Invalid request: unsupported Content-Type {content_type}. If error persists and you need assistance, please contact support@stripe.com."
                ),
            ));
        }
    }
    form::parse(&bytes)
}
