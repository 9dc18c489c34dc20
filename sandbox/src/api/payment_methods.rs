//! `/v1/payment_methods` and `/v1/customers/{id}/payment_methods`: test cards become payment
//! methods, attach to and detach from customers, and are listed per customer.
//!
//! A magic id such as `pm_card_visa` is not an object: each use (attach, or a PaymentIntent)
//! clones a fresh `pm_…` from the test card, as Stripe does.

use serde_json::Value;

use super::{email, expand_list, list_params, metadata, ok};
use crate::account::{
    Account, Page, RequestCtx, list_json, merge_metadata, new_id, now_unix, paginate,
};
use crate::cards::{self, Behaviour, TestCard};
use crate::error::ApiError;
use crate::form::Params;
use crate::objects::{Metadata, PaymentMethod};

const EXPANDABLE: &[&str] = &["customer"];

#[derive(Debug)]
pub struct CreatePaymentMethod {
    card: &'static TestCard,
    metadata: Metadata,
    billing_name: Option<String>,
    billing_email: Option<String>,
    billing_phone: Option<String>,
}

pub fn parse_create(mut p: Params) -> Result<CreatePaymentMethod, ApiError> {
    match p.string("type")?.as_deref() {
        Some("card") => {}
        Some(other) => {
            return Err(ApiError::invalid_param(
                "type",
                Some("parameter_invalid_string"),
                format!(
                    "Invalid type: {other}. The Flint sandbox supports only `card` payment methods."
                ),
            ));
        }
        None => return Err(ApiError::missing("type")),
    }
    let mut card = p.nested("card")?.ok_or_else(|| ApiError::missing("card"))?;
    for raw in ["number", "cvc", "exp_month", "exp_year"] {
        if card.string(raw)?.is_some() {
            return Err(ApiError::invalid_param(
                card.name(raw),
                None,
                "Sending card numbers directly is not supported: the Flint sandbox accepts only test tokens, for example card[token]=tok_visa.",
            ));
        }
    }
    let token = card.required_string("token")?;
    let test_card = cards::lookup(&token)
        .filter(|_| token.starts_with("tok_"))
        .ok_or_else(|| ApiError::no_such_param("token", &token, "card[token]"))?;
    card.finish()?;
    let (billing_name, billing_email, billing_phone) = match p.nested("billing_details")? {
        Some(mut b) => {
            let name = b.string("name")?;
            let mail = email(&mut b)?;
            let phone = b.string("phone")?;
            if let Some(mut address) = b.nested("address")? {
                for field in ["city", "country", "line1", "line2", "postal_code", "state"] {
                    address.string(field)?;
                }
                address.finish()?;
            }
            b.finish()?;
            (name, mail, phone)
        }
        None => (None, None, None),
    };
    let req = CreatePaymentMethod {
        card: test_card,
        metadata: metadata(&mut p)?.unwrap_or_default(),
        billing_name,
        billing_email,
        billing_phone,
    };
    expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok(req)
}

pub fn parse_attach(mut p: Params) -> Result<(String, Vec<String>), ApiError> {
    let customer = p.required_string("customer")?;
    let expand = expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok((customer, expand))
}

pub fn parse_retrieve(mut p: Params) -> Result<Vec<String>, ApiError> {
    let expand = expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok(expand)
}

#[derive(Debug)]
pub struct ListPaymentMethods {
    customer: Option<String>,
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// `GET /v1/customers/{id}/payment_methods` (customer from the path) or
/// `GET /v1/payment_methods?customer=` (customer from the query).
pub fn parse_list(mut p: Params, customer_in_query: bool) -> Result<ListPaymentMethods, ApiError> {
    let customer = if customer_in_query {
        p.string("customer")?
    } else {
        None
    };
    if let Some(kind) = p.string("type")?
        && kind != "card"
    {
        return Err(ApiError::invalid_param(
            "type",
            Some("parameter_invalid_string"),
            format!("Invalid type: {kind}. The Flint sandbox supports only `card`."),
        ));
    }
    p.string("allow_redisplay")?;
    let (limit, starting_after, ending_before) = list_params(&mut p)?;
    expand_list(&mut p, &[])?;
    p.finish()?;
    Ok(ListPaymentMethods {
        customer,
        limit,
        starting_after,
        ending_before,
    })
}

impl Account {
    fn clone_test_card(&mut self, card: &'static TestCard, customer: Option<String>) -> String {
        let id = new_id("pm");
        let year = 1970 + now_unix() / 31_556_952;
        self.payment_methods.insert(
            id.clone(),
            PaymentMethod {
                id: id.clone(),
                created: now_unix(),
                card,
                exp_month: 12,
                exp_year: i32::try_from(year + 3).unwrap_or(2030),
                customer,
                metadata: Metadata::new(),
                billing_name: None,
                billing_email: None,
                billing_phone: None,
            },
        );
        self.payment_method_order.push(id.clone());
        id
    }

    /// Turns a `payment_method` parameter into a stored PaymentMethod id: a magic `pm_card_*`
    /// becomes a fresh unattached clone, a `pm_…` must exist.
    pub fn resolve_payment_method(&mut self, pm: &str, param: &str) -> Result<String, ApiError> {
        if let Some(card) = cards::lookup(pm).filter(|_| pm.starts_with("pm_card_")) {
            return Ok(self.clone_test_card(card, None));
        }
        if self.payment_methods.contains_key(pm) {
            Ok(pm.to_owned())
        } else {
            Err(ApiError::no_such_param("PaymentMethod", pm, param))
        }
    }

    /// Checks that `pm` could be attached to `customer` (when given), without changing anything.
    pub fn attachable(
        &self,
        pm: &str,
        customer: Option<&str>,
        param: &str,
        ctx: &RequestCtx,
    ) -> Result<(), ApiError> {
        let card = match cards::lookup(pm).filter(|_| pm.starts_with("pm_card_")) {
            Some(card) => card,
            None => {
                let existing = self
                    .payment_methods
                    .get(pm)
                    .ok_or_else(|| ApiError::no_such_param("PaymentMethod", pm, param))?;
                if let Some(owner) = &existing.customer
                    && Some(owner.as_str()) != customer
                {
                    return Err(ApiError::invalid_param(
                        param,
                        Some("payment_method_unexpected_state"),
                        "The payment method you provided has already been attached to a customer.",
                    ));
                }
                existing.card
            }
        };
        if let Some(customer) = customer {
            self.customer_param(customer, "customer")?;
        }
        if ctx.strict_attach
            && !card.attaches_in_strict_mode
            && let Behaviour::Decline {
                code,
                decline_code,
                message,
                ..
            } = card.behaviour
        {
            return Err(ApiError::card_error(code, decline_code, message));
        }
        Ok(())
    }

    /// Attaches `pm` (magic or stored) to `customer`; returns the attached `pm_…` id.
    pub fn attach(
        &mut self,
        pm: &str,
        customer: &str,
        param: &str,
        ctx: &RequestCtx,
    ) -> Result<String, ApiError> {
        self.attachable(pm, Some(customer), param, ctx)?;
        let id = self.resolve_payment_method(pm, param)?;
        let method = self
            .payment_methods
            .get_mut(&id)
            .expect("resolved payment methods exist");
        method.customer = Some(customer.to_owned());
        Ok(id)
    }

    pub fn create_payment_method(&mut self, req: CreatePaymentMethod) -> Result<Value, ApiError> {
        let id = self.clone_test_card(req.card, None);
        let pm = self.payment_methods.get_mut(&id).expect("just inserted");
        merge_metadata(&mut pm.metadata, Some(req.metadata));
        pm.billing_name = req.billing_name;
        pm.billing_email = req.billing_email;
        pm.billing_phone = req.billing_phone;
        ok(pm.to_json())
    }

    pub fn retrieve_payment_method(&self, id: &str, expand: &[String]) -> Result<Value, ApiError> {
        let pm = self
            .payment_methods
            .get(id)
            .ok_or_else(|| ApiError::no_such("PaymentMethod", id))?;
        ok(self.render_payment_method(pm, expand))
    }

    pub fn attach_payment_method(
        &mut self,
        id: &str,
        customer: &str,
        expand: &[String],
        ctx: &RequestCtx,
    ) -> Result<Value, ApiError> {
        let is_magic = cards::lookup(id).is_some() && id.starts_with("pm_card_");
        if !is_magic && !self.payment_methods.contains_key(id) {
            return Err(ApiError::no_such("PaymentMethod", id));
        }
        let attached = self.attach(id, customer, "customer", ctx)?;
        ok(self.render_payment_method(&self.payment_methods[&attached], expand))
    }

    pub fn detach_payment_method(
        &mut self,
        id: &str,
        expand: &[String],
    ) -> Result<Value, ApiError> {
        let pm = self
            .payment_methods
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("PaymentMethod", id))?;
        let Some(owner) = pm.customer.take() else {
            return Err(ApiError::invalid_request(
                Some("payment_method_unexpected_state"),
                format!(
                    "The payment method {id} is not attached to a customer so detachment is impossible."
                ),
            ));
        };
        if let Some(customer) = self.customers.get_mut(&owner)
            && customer.default_payment_method.as_deref() == Some(id)
        {
            customer.default_payment_method = None;
        }
        ok(self.render_payment_method(&self.payment_methods[id], expand))
    }

    /// A customer's attached payment methods, newest first.
    pub fn list_payment_methods(
        &self,
        customer: Option<&str>,
        req: &ListPaymentMethods,
    ) -> Result<Value, ApiError> {
        let customer = match (customer, req.customer.as_deref()) {
            (Some(c), _) => {
                self.customer(c)?;
                c
            }
            (None, Some(c)) => {
                self.customer_param(c, "customer")?;
                c
            }
            (None, None) => return ok(list_json("/v1/payment_methods", Vec::new(), false)),
        };
        let page = Page {
            limit: req.limit,
            starting_after: req.starting_after.as_deref(),
            ending_before: req.ending_before.as_deref(),
        };
        let keep = |id: &str| self.payment_methods[id].customer.as_deref() == Some(customer);
        let (ids, has_more) = paginate(&self.payment_method_order, &page, keep, "PaymentMethod")?;
        let data = ids
            .into_iter()
            .map(|id| self.payment_methods[id].to_json())
            .collect();
        ok(list_json(
            &format!("/v1/customers/{customer}/payment_methods"),
            data,
            has_more,
        ))
    }

    pub fn retrieve_customer_payment_method(
        &self,
        customer: &str,
        id: &str,
    ) -> Result<Value, ApiError> {
        self.customer(customer)?;
        match self.payment_methods.get(id) {
            Some(pm) if pm.customer.as_deref() == Some(customer) => ok(pm.to_json()),
            Some(_) | None => Err(ApiError::no_such("PaymentMethod", id)),
        }
    }

    fn render_payment_method(&self, pm: &PaymentMethod, expand: &[String]) -> Value {
        let mut json = pm.to_json();
        if expand.iter().any(|e| e == "customer")
            && let Some(c) = pm.customer.as_ref().and_then(|c| self.customers.get(c))
        {
            json["customer"] = c.to_json();
        }
        json
    }
}
