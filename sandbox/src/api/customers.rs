//! `/v1/customers`: create, retrieve, update (`invoice_settings[default_payment_method]`),
//! delete.

use serde_json::Value;

use super::{email, expand_list, metadata, ok};
use crate::account::{Account, RequestCtx, merge_metadata, new_id, now_unix};
use crate::error::ApiError;
use crate::form::Params;
use crate::objects::{Customer, Metadata};

const EXPANDABLE: &[&str] = &["invoice_settings.default_payment_method"];

#[derive(Debug)]
pub struct CreateCustomer {
    email: Option<String>,
    name: Option<String>,
    description: Option<String>,
    phone: Option<String>,
    metadata: Metadata,
    payment_method: Option<String>,
    default_payment_method: Option<String>,
    expand: Vec<String>,
}

pub fn parse_create(mut p: Params) -> Result<CreateCustomer, ApiError> {
    let req = CreateCustomer {
        email: email(&mut p)?,
        name: p.string("name")?,
        description: p.string("description")?,
        phone: p.string("phone")?,
        metadata: metadata(&mut p)?.unwrap_or_default(),
        payment_method: p.string("payment_method")?,
        default_payment_method: match p.nested("invoice_settings")? {
            Some(mut settings) => {
                let pm = settings.string("default_payment_method")?;
                settings.finish()?;
                pm
            }
            None => None,
        },
        expand: expand_list(&mut p, EXPANDABLE)?,
    };
    p.finish()?;
    Ok(req)
}

#[derive(Debug)]
pub struct UpdateCustomer {
    email: Option<String>,
    name: Option<String>,
    description: Option<String>,
    phone: Option<String>,
    metadata: Option<Metadata>,
    /// `Some("")` clears the default.
    default_payment_method: Option<String>,
    expand: Vec<String>,
}

pub fn parse_update(mut p: Params) -> Result<UpdateCustomer, ApiError> {
    let req = UpdateCustomer {
        email: match p.string_or_empty("email")? {
            Some(e) if !e.is_empty() && !e.contains('@') => {
                return Err(ApiError::invalid_param(
                    "email",
                    Some("email_invalid"),
                    format!("Invalid email address: {e}"),
                ));
            }
            other => other,
        },
        name: p.string_or_empty("name")?,
        description: p.string_or_empty("description")?,
        phone: p.string_or_empty("phone")?,
        metadata: metadata(&mut p)?,
        default_payment_method: match p.nested("invoice_settings")? {
            Some(mut settings) => {
                let pm = settings.string_or_empty("default_payment_method")?;
                settings.finish()?;
                pm
            }
            None => None,
        },
        expand: expand_list(&mut p, EXPANDABLE)?,
    };
    p.finish()?;
    Ok(req)
}

pub fn parse_retrieve(mut p: Params) -> Result<Vec<String>, ApiError> {
    let expand = expand_list(&mut p, EXPANDABLE)?;
    p.finish()?;
    Ok(expand)
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl Account {
    pub fn create_customer(
        &mut self,
        req: CreateCustomer,
        ctx: &RequestCtx,
    ) -> Result<Value, ApiError> {
        let id = new_id("cus");
        // Check references before creating anything, so a failed request leaves no customer.
        if let Some(pm) = &req.payment_method {
            self.attachable(pm, None, "payment_method", ctx)?;
        }
        if let Some(default) = &req.default_payment_method
            && req.payment_method.as_deref() != Some(default)
        {
            return Err(not_attached(
                default,
                "invoice_settings[default_payment_method]",
            ));
        }
        self.customers.insert(
            id.clone(),
            Customer {
                id: id.clone(),
                created: now_unix(),
                email: req.email,
                name: req.name,
                description: req.description,
                phone: req.phone,
                metadata: req.metadata,
                default_payment_method: None,
                deleted: false,
            },
        );
        self.customer_order.push(id.clone());
        if let Some(pm) = &req.payment_method {
            let attached = self.attach(pm, &id, "payment_method", ctx)?;
            if req.default_payment_method.is_some() {
                self.customer_mut(&id)?.default_payment_method = Some(attached);
            }
        }
        ok(self.render_customer(&id, &req.expand))
    }

    pub fn retrieve_customer(&self, id: &str, expand: &[String]) -> Result<Value, ApiError> {
        self.customer(id)?;
        ok(self.render_customer(id, expand))
    }

    pub fn update_customer(&mut self, id: &str, req: UpdateCustomer) -> Result<Value, ApiError> {
        let customer = self.customer(id)?;
        if customer.deleted {
            return Err(ApiError::invalid_request(
                None,
                "You cannot update a deleted customer.",
            ));
        }
        if let Some(pm) = req
            .default_payment_method
            .as_deref()
            .filter(|pm| !pm.is_empty())
        {
            let attached_here = self
                .payment_methods
                .get(pm)
                .is_some_and(|m| m.customer.as_deref() == Some(id));
            if !attached_here {
                return Err(not_attached(pm, "invoice_settings[default_payment_method]"));
            }
        }
        let customer = self.customer_mut(id)?;
        if let Some(v) = req.email {
            customer.email = non_empty(v);
        }
        if let Some(v) = req.name {
            customer.name = non_empty(v);
        }
        if let Some(v) = req.description {
            customer.description = non_empty(v);
        }
        if let Some(v) = req.phone {
            customer.phone = non_empty(v);
        }
        merge_metadata(&mut customer.metadata, req.metadata);
        if let Some(pm) = req.default_payment_method {
            customer.default_payment_method = non_empty(pm);
        }
        ok(self.render_customer(id, &req.expand))
    }

    pub fn delete_customer(&mut self, id: &str) -> Result<Value, ApiError> {
        let customer = self.customer_mut(id)?;
        if customer.deleted {
            return Err(ApiError::no_such("customer", id));
        }
        customer.deleted = true;
        customer.default_payment_method = None;
        for pm in self.payment_methods.values_mut() {
            if pm.customer.as_deref() == Some(id) {
                pm.customer = None;
            }
        }
        ok(serde_json::json!({"id": id, "object": "customer", "deleted": true}))
    }

    fn render_customer(&self, id: &str, expand: &[String]) -> Value {
        let customer = &self.customers[id];
        let mut json = customer.to_json();
        if expand
            .iter()
            .any(|e| e == "invoice_settings.default_payment_method")
            && let Some(pm) = customer
                .default_payment_method
                .as_ref()
                .and_then(|pm| self.payment_methods.get(pm))
        {
            json["invoice_settings"]["default_payment_method"] = pm.to_json();
        }
        json
    }
}

fn not_attached(pm: &str, param: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        Some("resource_missing"),
        format!(
            "The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."
        ),
    )
}
