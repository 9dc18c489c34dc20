//! `/v1/payment_intents`: create (optionally confirming at once), confirm, retrieve, cancel and
//! list, with each test card's documented off-session outcome.

use flint_shared::money::{Currency, Money};
use serde_json::{Value, json};

use super::{expand_list, list_params, metadata, ok};
use crate::account::{Account, Page, RequestCtx, list_json, new_id, now_unix, paginate};
use crate::cards::Behaviour;
use crate::error::ApiError;
use crate::form::Params;
use crate::objects::{Charge, ChargeOutcome, IntentStatus, Metadata, PaymentIntent};

const EXPANDABLE: &[&str] = &["latest_charge", "payment_method", "customer"];

/// The part of a confirmation that both create (`confirm=true`) and confirm carry.
#[derive(Debug, Default)]
pub struct ConfirmOptions {
    payment_method: Option<String>,
    off_session: bool,
    error_on_requires_action: bool,
    receipt_email: Option<String>,
    setup_future_usage: Option<String>,
    expand: Vec<String>,
}

#[derive(Debug)]
pub struct CreateIntent {
    money: Money,
    customer: Option<String>,
    confirm: bool,
    description: Option<String>,
    metadata: Metadata,
    statement_descriptor_suffix: Option<String>,
    capture_method: String,
    confirmation_method: String,
    options: ConfirmOptions,
}

/// `off_session` is a boolean, or (historically) `one_off` / `recurring`.
fn off_session(p: &mut Params) -> Result<Option<bool>, ApiError> {
    match p.string("off_session")?.as_deref() {
        None => Ok(None),
        Some("true" | "one_off" | "recurring") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid_param(
            "off_session",
            Some("parameter_invalid_boolean"),
            format!("Invalid boolean: {other}"),
        )),
    }
}

fn statement_descriptor_suffix(p: &mut Params) -> Result<Option<String>, ApiError> {
    let Some(s) = p.string("statement_descriptor_suffix")? else {
        return Ok(None);
    };
    let valid = s.chars().count() <= 22
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && !s.contains(['<', '>', '\\', '\'', '"', '*']);
    if valid {
        Ok(Some(s))
    } else {
        Err(ApiError::invalid_param(
            "statement_descriptor_suffix",
            Some("parameter_invalid_string"),
            "The statement descriptor suffix must be 1–22 characters, contain at least one letter, and not contain any of <, >, \\, ', \", *.",
        ))
    }
}

fn confirm_options(p: &mut Params) -> Result<ConfirmOptions, ApiError> {
    let options = ConfirmOptions {
        payment_method: p.string("payment_method")?,
        off_session: off_session(p)?.unwrap_or(false),
        error_on_requires_action: p.boolean("error_on_requires_action")?.unwrap_or(false),
        receipt_email: super::receipt_email(p)?,
        setup_future_usage: p.one_of("setup_future_usage", &["off_session", "on_session"])?,
        expand: expand_list(p, EXPANDABLE)?,
    };
    p.string("return_url")?;
    if let Some(types) = p.string_list("payment_method_types")?
        && let Some(bad) = types.iter().find(|t| t.as_str() != "card")
    {
        return Err(ApiError::invalid_param(
            "payment_method_types",
            Some("payment_method_invalid_parameter"),
            format!(
                "The payment method type \"{bad}\" is invalid. The Flint sandbox supports only `card`."
            ),
        ));
    }
    Ok(options)
}

pub fn parse_create(mut p: Params) -> Result<CreateIntent, ApiError> {
    let amount = p
        .integer("amount")?
        .ok_or_else(|| ApiError::missing("amount"))?;
    let currency = p.required_string("currency")?;
    let currency = Currency::parse(&currency).map_err(money_error)?;
    let money = Money::new(amount, currency).map_err(money_error)?;
    let confirm = p.boolean("confirm")?.unwrap_or(false);
    if p.string("statement_descriptor")?.is_some() {
        return Err(ApiError::invalid_param(
            "statement_descriptor",
            Some("parameter_invalid_string"),
            "The `statement_descriptor` parameter is not supported for the `card` payment method type. Use `statement_descriptor_suffix` instead.",
        ));
    }
    let capture_method = p
        .string("capture_method")?
        .unwrap_or_else(|| "automatic".to_owned());
    if !["automatic", "automatic_async"].contains(&capture_method.as_str()) {
        return Err(ApiError::invalid_param(
            "capture_method",
            Some("parameter_invalid_string"),
            "Invalid capture_method: the Flint sandbox supports `automatic` and `automatic_async`.",
        ));
    }
    let req = CreateIntent {
        money,
        customer: p.string("customer")?,
        confirm,
        description: p.string("description")?,
        metadata: metadata(&mut p)?.unwrap_or_default(),
        statement_descriptor_suffix: statement_descriptor_suffix(&mut p)?,
        capture_method,
        confirmation_method: p
            .one_of("confirmation_method", &["automatic", "manual"])?
            .unwrap_or_else(|| "automatic".to_owned()),
        options: confirm_options(&mut p)?,
    };
    p.finish()?;
    if !confirm && req.options.off_session {
        return Err(ApiError::invalid_param(
            "off_session",
            None,
            "The `off_session` parameter can only be used when `confirm` is true.",
        ));
    }
    if !confirm && req.options.error_on_requires_action {
        return Err(ApiError::invalid_param(
            "error_on_requires_action",
            None,
            "The `error_on_requires_action` parameter can only be used when `confirm` is true.",
        ));
    }
    Ok(req)
}

pub fn parse_confirm(mut p: Params) -> Result<ConfirmOptions, ApiError> {
    let options = confirm_options(&mut p)?;
    p.finish()?;
    Ok(options)
}

pub fn parse_cancel(mut p: Params) -> Result<(Option<String>, Vec<String>), ApiError> {
    let reason = p.one_of(
        "cancellation_reason",
        &[
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ],
    )?;
    let expand = expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok((reason, expand))
}

pub fn parse_retrieve(mut p: Params) -> Result<Vec<String>, ApiError> {
    p.string("client_secret")?;
    let expand = expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok(expand)
}

#[derive(Debug)]
pub struct ListIntents {
    customer: Option<String>,
    /// Stripe's `created` filter: unix seconds, each bound optional (`gt`, `gte`, `lt`, `lte`,
    /// or `created=<t>` for exactly `t`).
    created: Created,
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

#[derive(Debug, Default)]
struct Created {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl Created {
    fn keeps(&self, t: i64) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}

fn parse_created(p: &mut Params) -> Result<Created, ApiError> {
    // `created=<t>` is a plain value, `created[gte]=<t>` a nested one.
    if !p.is_object("created") {
        return Ok(match p.integer("created")? {
            Some(t) => Created {
                gte: Some(t),
                lte: Some(t),
                ..Created::default()
            },
            None => Created::default(),
        });
    }
    let Some(mut range) = p.nested("created")? else {
        return Ok(Created::default());
    };
    let created = Created {
        gt: range.integer("gt")?,
        gte: range.integer("gte")?,
        lt: range.integer("lt")?,
        lte: range.integer("lte")?,
    };
    range.finish()?;
    Ok(created)
}

pub fn parse_list(mut p: Params) -> Result<ListIntents, ApiError> {
    let customer = p.string("customer")?;
    let created = parse_created(&mut p)?;
    let (limit, starting_after, ending_before) = list_params(&mut p)?;
    expand_list(&mut p, &[])?;
    p.finish()?;
    Ok(ListIntents {
        customer,
        created,
        limit,
        starting_after,
        ending_before,
    })
}

fn money_error(e: flint_shared::money::MoneyError) -> ApiError {
    ApiError::invalid_param(e.param(), Some(e.code()), e.to_string())
}

const CONFIRMABLE: &[IntentStatus] = &[
    IntentStatus::RequiresPaymentMethod,
    IntentStatus::RequiresConfirmation,
    IntentStatus::RequiresAction,
];
const CANCELABLE: &[IntentStatus] = &[
    IntentStatus::RequiresPaymentMethod,
    IntentStatus::RequiresCapture,
    IntentStatus::RequiresConfirmation,
    IntentStatus::RequiresAction,
    IntentStatus::Processing,
];

impl Account {
    pub fn create_intent(
        &mut self,
        req: CreateIntent,
        ctx: &RequestCtx,
    ) -> Result<Value, ApiError> {
        if let Some(customer) = &req.customer {
            self.customer_param(customer, "customer")?;
        }
        let payment_method = match &req.options.payment_method {
            Some(pm) => Some(self.usable_payment_method(pm, req.customer.as_deref())?),
            None => None,
        };
        let id = new_id("pi");
        let intent = PaymentIntent {
            client_secret: format!("{id}_secret_{}", flint_shared::ids::random_token(25)),
            id: id.clone(),
            created: now_unix(),
            amount: req.money.amount_minor(),
            currency: req.money.currency().code(),
            customer: req.customer,
            status: if payment_method.is_some() {
                IntentStatus::RequiresConfirmation
            } else {
                IntentStatus::RequiresPaymentMethod
            },
            payment_method,
            latest_charge: None,
            last_payment_error: None,
            next_action: None,
            cancellation_reason: None,
            canceled_at: None,
            capture_method: req.capture_method,
            confirmation_method: req.confirmation_method,
            description: req.description,
            metadata: req.metadata,
            statement_descriptor_suffix: req.statement_descriptor_suffix,
            setup_future_usage: None,
            receipt_email: None,
        };
        self.emit("payment_intent.created", intent.to_json(), ctx);
        self.intents.insert(id.clone(), intent);
        self.intent_order.push(id.clone());
        if req.confirm {
            let options = ConfirmOptions {
                payment_method: None,
                ..req.options
            };
            return self.confirm_intent(&id, options, ctx);
        }
        let intent = self.intent_mut(&id)?;
        intent.receipt_email = req.options.receipt_email;
        intent.setup_future_usage = req.options.setup_future_usage;
        ok(self.render_intent(&id, &req.options.expand))
    }

    /// A payment method that may be used with `customer`: magic ids are cloned; a method
    /// attached to another customer (or to one when the intent has none) is refused.
    fn usable_payment_method(
        &mut self,
        pm: &str,
        customer: Option<&str>,
    ) -> Result<String, ApiError> {
        let id = self.resolve_payment_method(pm, "payment_method")?;
        match (&self.payment_methods[&id].customer, customer) {
            (Some(owner), Some(customer)) if owner != customer => Err(ApiError::invalid_param(
                "payment_method",
                None,
                format!(
                    "The provided PaymentMethod {pm} is attached to another customer. Payment methods attached to other Customers cannot be used with this PaymentIntent."
                ),
            )),
            (Some(_), None) => Err(ApiError::invalid_param(
                "customer",
                None,
                format!(
                    "The provided PaymentMethod {pm} is attached to a Customer. Please provide the `customer` parameter to use it."
                ),
            )),
            _ => Ok(id),
        }
    }

    pub fn confirm_intent(
        &mut self,
        id: &str,
        options: ConfirmOptions,
        ctx: &RequestCtx,
    ) -> Result<Value, ApiError> {
        let intent = self.intent(id)?;
        if !CONFIRMABLE.contains(&intent.status) {
            return Err(self.unexpected_state(
                id,
                "confirm",
                "requires_confirmation, requires_payment_method, requires_action",
            ));
        }
        let customer = intent.customer.clone();
        if let Some(pm) = &options.payment_method {
            let pm = self.usable_payment_method(pm, customer.as_deref())?;
            self.intent_mut(id)?.payment_method = Some(pm);
        }
        let intent = self.intent_mut(id)?;
        if options.receipt_email.is_some() {
            intent.receipt_email = options.receipt_email.clone();
        }
        if options.setup_future_usage.is_some() {
            intent.setup_future_usage = options.setup_future_usage.clone();
        }
        let Some(pm_id) = intent.payment_method.clone() else {
            return Err(ApiError::invalid_param(
                "payment_method",
                Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent with a payment method and then confirm it again.",
            ));
        };
        let card = self.payment_methods[&pm_id].card;
        match (card.behaviour, options.off_session) {
            (Behaviour::Succeed, _) | (Behaviour::AuthenticationOnSessionOnly, true) => {
                self.charge(id, &pm_id, ChargeOutcome::Authorized, None, ctx);
                let intent = self.intent_mut(id)?;
                intent.status = IntentStatus::Succeeded;
                intent.last_payment_error = None;
                intent.next_action = None;
                let snapshot = intent.to_json();
                self.emit("payment_intent.succeeded", snapshot, ctx);
                ok(self.render_intent(id, &options.expand))
            }
            (
                Behaviour::Decline {
                    code,
                    decline_code,
                    network_advice_code,
                    message,
                    blocked,
                },
                _,
            ) => {
                let mut error = ApiError::card_error(code, decline_code, message);
                if let Some(advice) = network_advice_code {
                    error = error.with_extra("network_advice_code", json!(advice));
                }
                let outcome = if blocked {
                    ChargeOutcome::Blocked
                } else {
                    ChargeOutcome::IssuerDeclined
                };
                let charge = self.charge(id, &pm_id, outcome, Some(&error), ctx);
                Err(self.fail_intent(id, &pm_id, error.with_extra("charge", json!(charge)), ctx))
            }
            (Behaviour::AuthenticationRequired, true) => {
                let error = ApiError::card_error(
                    "authentication_required",
                    Some("authentication_required"),
                    "Your card was declined. This transaction requires authentication.",
                );
                // A failed charge records the attempt, as for other declines, so that a client
                // that lost the answer can tell this attempt happened.
                let charge =
                    self.charge(id, &pm_id, ChargeOutcome::IssuerDeclined, Some(&error), ctx);
                Err(self.fail_intent(id, &pm_id, error.with_extra("charge", json!(charge)), ctx))
            }
            (Behaviour::AuthenticationRequired | Behaviour::AuthenticationOnSessionOnly, false)
                if options.error_on_requires_action =>
            {
                let error = ApiError::card_error(
                    "authentication_required",
                    Some("authentication_not_handled"),
                    "This payment required an authentication action to complete, but `error_on_requires_action` was set. When you're ready, you can upgrade your integration to handle actions at https://stripe.com/docs/payments/payment-intents/upgrade-to-handle-actions.",
                );
                Err(self.fail_intent(id, &pm_id, error, ctx))
            }
            (Behaviour::AuthenticationRequired | Behaviour::AuthenticationOnSessionOnly, false) => {
                let intent = self.intent_mut(id)?;
                intent.status = IntentStatus::RequiresAction;
                intent.next_action = Some(json!({
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": format!("https://hooks.stripe.com/3d_secure_2/hosted?payment_intent={id}")}
                }));
                let snapshot = intent.to_json();
                self.emit("payment_intent.requires_action", snapshot, ctx);
                ok(self.render_intent(id, &options.expand))
            }
        }
    }

    /// Records a failed attempt on the intent and builds the 402 that carries its snapshot.
    fn fail_intent(
        &mut self,
        id: &str,
        pm_id: &str,
        error: ApiError,
        ctx: &RequestCtx,
    ) -> ApiError {
        let pm_json = self.payment_methods[pm_id].to_json();
        let error = error.with_extra("payment_method", pm_json);
        let intent = self
            .intents
            .get_mut(id)
            .expect("the intent being confirmed exists");
        intent.status = IntentStatus::RequiresPaymentMethod;
        intent.last_payment_error = Some(error.object());
        intent.next_action = None;
        let snapshot = intent.to_json();
        self.emit("payment_intent.payment_failed", snapshot.clone(), ctx);
        error.with_extra("payment_intent", snapshot)
    }

    /// Creates the charge of one confirmation and makes it the intent's `latest_charge`.
    fn charge(
        &mut self,
        intent_id: &str,
        pm_id: &str,
        outcome: ChargeOutcome,
        error: Option<&ApiError>,
        ctx: &RequestCtx,
    ) -> String {
        let pm = &self.payment_methods[pm_id];
        let intent = &self.intents[intent_id];
        let charge = Charge {
            id: new_id("ch"),
            created: now_unix(),
            amount: intent.amount,
            currency: intent.currency,
            customer: intent.customer.clone(),
            payment_intent: intent_id.to_owned(),
            payment_method: pm_id.to_owned(),
            card_json: pm.card_json(),
            outcome,
            failure_code: error.and_then(|e| e.code.clone()),
            failure_message: error.map(|e| e.message.clone()),
            decline_code: error.and_then(|e| e.decline_code.clone()),
            risk_level: pm.card.risk_level,
            description: intent.description.clone(),
            metadata: intent.metadata.clone(),
        };
        let id = charge.id.clone();
        let kind = if outcome == ChargeOutcome::Authorized {
            "charge.succeeded"
        } else {
            "charge.failed"
        };
        self.emit(kind, charge.to_json(), ctx);
        self.charges.insert(id.clone(), charge);
        self.intents
            .get_mut(intent_id)
            .expect("exists")
            .latest_charge = Some(id.clone());
        id
    }

    fn unexpected_state(&self, id: &str, action: &str, allowed: &str) -> ApiError {
        let intent = &self.intents[id];
        ApiError::invalid_request(
            Some("payment_intent_unexpected_state"),
            format!(
                "You cannot {action} this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be {action}ed: {allowed}.",
                intent.status.as_str()
            ),
        )
        .with_extra("payment_intent", intent.to_json())
    }

    pub fn cancel_intent(
        &mut self,
        id: &str,
        reason: Option<String>,
        expand: &[String],
        ctx: &RequestCtx,
    ) -> Result<Value, ApiError> {
        let intent = self.intent(id)?;
        if !CANCELABLE.contains(&intent.status) {
            return Err(self.unexpected_state(
                id,
                "cancel",
                "requires_payment_method, requires_capture, requires_confirmation, requires_action, processing",
            ));
        }
        let intent = self.intent_mut(id)?;
        intent.status = IntentStatus::Canceled;
        intent.cancellation_reason = reason;
        intent.canceled_at = Some(now_unix());
        intent.next_action = None;
        let snapshot = intent.to_json();
        self.emit("payment_intent.canceled", snapshot, ctx);
        ok(self.render_intent(id, expand))
    }

    pub fn retrieve_intent(&self, id: &str, expand: &[String]) -> Result<Value, ApiError> {
        self.intent(id)?;
        ok(self.render_intent(id, expand))
    }

    pub fn list_intents(&self, req: &ListIntents) -> Result<Value, ApiError> {
        let page = Page {
            limit: req.limit,
            starting_after: req.starting_after.as_deref(),
            ending_before: req.ending_before.as_deref(),
        };
        let keep = |id: &str| {
            let intent = &self.intents[id];
            req.customer
                .as_deref()
                .is_none_or(|c| intent.customer.as_deref() == Some(c))
                && req.created.keeps(intent.created)
        };
        let (ids, has_more) = paginate(&self.intent_order, &page, keep, "payment_intent")?;
        let data = ids
            .into_iter()
            .map(|id| self.intents[id].to_json())
            .collect();
        ok(list_json("/v1/payment_intents", data, has_more))
    }

    pub fn retrieve_charge(&self, id: &str) -> Result<Value, ApiError> {
        self.charges
            .get(id)
            .map(Charge::to_json)
            .ok_or_else(|| ApiError::no_such("charge", id))
    }

    fn render_intent(&self, id: &str, expand: &[String]) -> Value {
        let intent = &self.intents[id];
        let mut json = intent.to_json();
        for field in expand {
            let expanded = match field.as_str() {
                "latest_charge" => intent
                    .latest_charge
                    .as_ref()
                    .and_then(|c| self.charges.get(c))
                    .map(Charge::to_json),
                "payment_method" => intent
                    .payment_method
                    .as_ref()
                    .and_then(|p| self.payment_methods.get(p))
                    .map(|p| p.to_json()),
                "customer" => intent
                    .customer
                    .as_ref()
                    .and_then(|c| self.customers.get(c))
                    .map(|c| c.to_json()),
                _ => None,
            };
            if let Some(value) = expanded {
                json[field.as_str()] = value;
            }
        }
        json
    }
}
