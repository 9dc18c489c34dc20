//! `POST …/{id}/cancel` and `POST …/{id}/resume`: changes a caller makes to a payment while
//! workers may be moving it. Each is a compare-and-set, re-read and re-decided when a worker
//! got there first; the decision itself ([`cancel_change`], [`resume_change`]) is a pure
//! function of the payment as read.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use flint_shared::ids::PaymentId;
use flint_shared::payment::record::MAX_RESUMES;
use flint_shared::payment::request::{Actor, InitiatedBy, processor_id};
use flint_shared::payment::store::JobAction;
use flint_shared::payment::{EventKind, Payment, Status};
use flint_shared::time::Timestamp;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{authorize, optional_body, parse_id};
use crate::App;
use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};

/// What every action on one payment reads first: who asks, which payment, and the optional
/// JSON body (its defaults when there is none).
async fn action<T: serde::de::DeserializeOwned + Default>(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    body: Body,
) -> Result<(Tenant, PaymentId, T), ApiError> {
    let tenant = authorize(app, headers)?;
    let id = parse_id(id)?;
    let request = optional_body(app, headers, body).await?;
    Ok((tenant, id, request))
}

/// Re-reads and re-applies `change` until its compare-and-set lands (a worker may move the
/// payment meanwhile).
async fn transition<F>(
    app: &App,
    tenant: &Tenant,
    id: &PaymentId,
    mut change: F,
) -> Result<Payment, ApiError>
where
    F: FnMut(&mut Payment, Timestamp) -> Result<Change, ApiError>,
{
    for _ in 0..8 {
        let current = app
            .store
            .get(&tenant.id, id.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found("off_session_payment"))?;
        let mut payment = current.payment.clone();
        let now = Timestamp::now();
        let action = match change(&mut payment, now)? {
            // Already so, maybe by an earlier request answered 503 before replicas held it.
            Change::Nothing => {
                app.store.confirm_replicated(id.as_str()).await?;
                return Ok(payment);
            }
            Change::Write(action) => action,
        };
        if app
            .store
            .transition(&current, &payment, action, now)
            .await?
            .is_some()
        {
            return Ok(payment);
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "api_error",
        "payment_busy",
        "The payment is changing right now; retry in a moment.",
    ))
}

/// What a requested change amounts to.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// Already in the requested state: answer without writing.
    Nothing,
    Write(JobAction),
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (kept in the event timeline). Required when an operator cancels.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who cancels: a service, or an operator (who must give a reason).
    #[serde(default)]
    pub initiated_by: Option<InitiatedBy>,
}

/// Who asks for a change and why, checked.
fn actor(initiated_by: Option<InitiatedBy>, reason: Option<String>) -> Result<Actor, ApiError> {
    Actor::validate(initiated_by, reason).map_err(|e| ApiError::invalid(e.code, e.param, e.message))
}

fn conflict(code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_request_error", code, message)
}

/// Cancel applied to `p` as read.
fn cancel_change(p: &mut Payment, actor: &Actor, now: Timestamp) -> Result<Change, ApiError> {
    match p.status {
        Status::Pending | Status::Paused if p.open_attempt().is_none() => {
            p.status = Status::Canceled;
            p.next_attempt_at = None;
            p.expires_at = None;
            p.record_for(EventKind::Canceled, None, actor, now);
            Ok(Change::Write(JobAction::Unschedule))
        }
        Status::Processing | Status::Pending | Status::RequiresAttention if p.cancel_requested => {
            Ok(Change::Nothing)
        }
        // An attempt is under way, or its outcome is not known yet (it may have charged):
        // no further attempt starts, and the open one is settled before the payment ends.
        Status::Processing => {
            p.cancel_requested = true;
            p.cancel_request = Some(actor.clone());
            p.updated_at = now;
            Ok(Change::Write(JobAction::None))
        }
        Status::Pending | Status::Paused | Status::RequiresAttention => match p.open_attempt() {
            Some(_) => {
                p.cancel_requested = true;
                p.cancel_request = Some(actor.clone());
                p.status = Status::Pending;
                p.attention = None;
                p.expires_at = None;
                p.next_attempt_at = Some(now);
                p.updated_at = now;
                Ok(Change::Write(JobAction::Now))
            }
            None => {
                p.status = Status::Canceled;
                p.attention = None;
                p.next_attempt_at = None;
                p.record_for(EventKind::Canceled, None, actor, now);
                Ok(Change::Write(JobAction::Unschedule))
            }
        },
        Status::Canceled => Ok(Change::Nothing),
        Status::Succeeded | Status::Failed => Err(conflict(
            "payment_not_cancelable",
            format!(
                "The payment has {} and cannot be canceled.",
                p.status.as_str()
            ),
        )),
    }
}

/// Cancel a payment.
///
/// From `pending` or `paused` the payment is canceled at once. While an attempt runs
/// (`processing`), or when its last attempt's outcome is not known yet (`requires_attention`),
/// no further attempt will start (`cancel_requested: true`): the open attempt is settled first,
/// and the payment ends `canceled` unless that attempt charged.
#[utoipa::path(
    post, path = "/v1/off_session_payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path, description = "The payment id (`osp_…`)")),
    request_body(content = Option<CancelRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The payment, canceled or with `cancel_requested`", body = Payment),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "Already succeeded or failed", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`: nothing changed, retry; `storage_not_replicated`: the change was written but not yet confirmed by enough replicas: read the payment before repeating the request (see Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Payment>, ApiError> {
    let (tenant, id, request) = action::<CancelRequest>(&app, &headers, &id, body).await?;
    let actor = actor(request.initiated_by, request.reason)?;
    let payment = transition(&app, &tenant, &id, |p, now| cancel_change(p, &actor, now)).await?;
    Ok(Json(payment))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// A new saved payment method to charge (a `paused` payment, or one requiring attention
    /// whose last attempt ended).
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Why (kept in the event timeline). Required when an operator resumes.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who resumes: a service, or an operator (who must give a reason).
    #[serde(default)]
    pub initiated_by: Option<InitiatedBy>,
}

/// Resume applied to `p` as read.
fn resume_change(
    p: &mut Payment,
    payment_method: Option<&String>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Change, ApiError> {
    let not_resumable = |p: &Payment| {
        conflict(
            "payment_not_resumable",
            format!(
                "Only a paused payment, one requiring attention, or a pending one waiting for a retry can be resumed; this one is {}.",
                p.status.as_str()
            ),
        )
    };
    let resumable = match p.status {
        Status::Paused | Status::RequiresAttention => true,
        Status::Pending => {
            !p.attempts.is_empty()
                && p.open_attempt().is_none()
                && payment_method.is_none()
                && !p.cancel_requested
        }
        Status::Processing | Status::Succeeded | Status::Failed | Status::Canceled => false,
    };
    if !resumable {
        return Err(not_resumable(p));
    }
    if p.resumes() >= MAX_RESUMES {
        return Err(conflict(
            "resume_limit_reached",
            format!(
                "This payment was resumed {MAX_RESUMES} times already; create a new payment to charge the customer again."
            ),
        ));
    }
    if payment_method.is_some() && p.open_attempt().is_some() {
        return Err(conflict(
            "attempt_outcome_unknown",
            "The last attempt's outcome is not known yet: it is settled on the card it used, so the payment method cannot change now. Resume without one.".to_owned(),
        ));
    }
    let detail = match p.status {
        Status::Pending => Some("retry now".to_owned()),
        Status::RequiresAttention => p
            .attention
            .as_ref()
            .map(|a| format!("after requiring attention ({})", a.reason.as_str())),
        Status::Paused
        | Status::Processing
        | Status::Succeeded
        | Status::Failed
        | Status::Canceled => None,
    };
    if let Some(pm) = payment_method {
        p.payment_method = Some(pm.clone());
    }
    p.status = Status::Pending;
    p.attention = None;
    p.expires_at = None;
    p.next_attempt_at = Some(now);
    p.record_for(EventKind::Resumed, detail, actor, now);
    Ok(Change::Write(JobAction::Now))
}

/// Resume a payment: a `paused` one (optionally with a new payment method), one that
/// `requires_attention` once its cause is fixed, or — "retry now" — a `pending` one that waits
/// for a scheduled retry. At most 10 resumes per payment.
#[utoipa::path(
    post, path = "/v1/off_session_payments/{id}/resume", tag = "payments",
    params(("id" = String, Path, description = "The payment id (`osp_…`)")),
    request_body(content = Option<ResumeRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The payment, `pending` and due now", body = Payment),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "Not resumable now, or resumed too often", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`: nothing changed, retry; `storage_not_replicated`: the change was written but not yet confirmed by enough replicas: read the payment before repeating the request (see Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn resume(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Payment>, ApiError> {
    let (tenant, id, request) = action::<ResumeRequest>(&app, &headers, &id, body).await?;
    if let Some(pm) = &request.payment_method {
        processor_id("payment_method", pm)
            .map_err(|e| ApiError::invalid(e.code, e.param, e.message))?;
    }
    let actor = actor(request.initiated_by, request.reason)?;
    let payment = transition(&app, &tenant, &id, |p, now| {
        resume_change(p, request.payment_method.as_ref(), &actor, now)
    })
    .await?;
    Ok(Json(payment))
}

#[cfg(test)]
mod tests {
    use flint_shared::payment::CreatePaymentRequest;
    use flint_shared::payment::record::{Attempt, Attention, AttentionReason};

    use super::*;

    fn payment(status: Status, open_attempt: bool) -> Payment {
        let now = Timestamp::from_unix_ms(1_800_000_000_000);
        let req: CreatePaymentRequest = serde_json::from_value(serde_json::json!({
            "customer": "cus_1", "amount": {"value": 2000, "currency": "usd"},
            "purpose": "subscription", "initiated_by": {"type": "service", "id": "billing"}
        }))
        .unwrap();
        let mut p = Payment::create(PaymentId::generate(), req.validate(now).unwrap(), now);
        p.status = status;
        let mut attempt = Attempt::new(1, Some("pm_1".into()), now);
        if !open_attempt {
            attempt.finished_at = Some(now);
        }
        p.attempts.push(attempt);
        if status == Status::RequiresAttention {
            p.attention = Some(Attention {
                reason: AttentionReason::UnknownOutcome,
                detail: "x".into(),
            });
        }
        p
    }

    #[test]
    fn cancel_settles_an_open_attempt_before_it_ends_the_payment() {
        let now = Timestamp::from_unix_ms(1_800_000_100_000);
        let cases = [
            (
                Status::Pending,
                false,
                Status::Canceled,
                false,
                JobAction::Unschedule,
            ),
            (
                Status::Paused,
                false,
                Status::Canceled,
                false,
                JobAction::Unschedule,
            ),
            (
                Status::Processing,
                true,
                Status::Processing,
                true,
                JobAction::None,
            ),
            (
                Status::RequiresAttention,
                true,
                Status::Pending,
                true,
                JobAction::Now,
            ),
            (
                Status::RequiresAttention,
                false,
                Status::Canceled,
                false,
                JobAction::Unschedule,
            ),
        ];
        for (status, open, after, requested, action) in cases {
            let mut p = payment(status, open);
            let change = cancel_change(&mut p, &Actor::default(), now).unwrap();
            assert_eq!(change, Change::Write(action), "{status:?} open={open}");
            assert_eq!(p.status, after, "{status:?} open={open}");
            assert_eq!(p.cancel_requested, requested, "{status:?} open={open}");
        }
        for status in [Status::Succeeded, Status::Failed] {
            assert!(cancel_change(&mut payment(status, false), &Actor::default(), now).is_err());
        }
        assert_eq!(
            cancel_change(
                &mut payment(Status::Canceled, false),
                &Actor::default(),
                now
            )
            .unwrap(),
            Change::Nothing
        );
    }

    #[test]
    fn resume_is_bounded_and_keeps_an_open_attempt_on_its_card() {
        let now = Timestamp::from_unix_ms(1_800_000_100_000);
        let pm = Some("pm_2".to_owned());
        let mut p = payment(Status::RequiresAttention, true);
        assert!(resume_change(&mut p.clone(), pm.as_ref(), &Actor::default(), now).is_err());
        assert_eq!(
            resume_change(&mut p, None, &Actor::default(), now).unwrap(),
            Change::Write(JobAction::Now)
        );
        assert_eq!(p.status, Status::Pending);
        assert_eq!(p.attention, None);

        let mut p = payment(Status::Paused, false);
        for _ in 0..MAX_RESUMES {
            resume_change(&mut p, pm.as_ref(), &Actor::default(), now).unwrap();
            p.status = Status::Paused;
        }
        let e = resume_change(&mut p, pm.as_ref(), &Actor::default(), now).unwrap_err();
        assert_eq!(e.detail.code, "resume_limit_reached");
        assert!(
            resume_change(
                &mut payment(Status::Processing, true),
                None,
                &Actor::default(),
                now
            )
            .is_err()
        );
    }
}
