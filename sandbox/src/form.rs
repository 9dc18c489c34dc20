//! Stripe's form encoding: `a=1&metadata[k]=v&expand[]=x&items[0][price]=p`.
//!
//! Parsed by hand into a small tree because what the sandbox needs from it is exactly Stripe's
//! behaviour, which no form crate gives: every parameter must be consumed by the endpoint or the
//! request fails with `parameter_unknown` naming it in bracket form, type errors name the full
//! bracketed parameter, and the tree has a canonical form for idempotency comparisons.
//! Percent-decoding is `form_urlencoded`'s.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::ApiError;

/// One parsed value: a string, a nested map (`a[b]`) or a list (`a[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(String),
    Map(BTreeMap<String, Value>),
    List(Vec<Value>),
}

/// Parameters of one request (or of one nested object), consumed by the endpoint as it reads
/// them; [`Params::finish`] rejects whatever is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    prefix: String,
    entries: BTreeMap<String, Value>,
}

const MAX_DEPTH: usize = 8;

/// Parses `application/x-www-form-urlencoded` input (a body or a query string).
pub fn parse(input: &[u8]) -> Result<Params, ApiError> {
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    for (raw_key, value) in form_urlencoded::parse(input) {
        let path = split_key(&raw_key)?;
        insert(&mut root, &raw_key, &path, value.into_owned())?;
    }
    Ok(Params {
        prefix: String::new(),
        entries: root,
    })
}

/// `a[b][]` → `["a", "b", ""]`; an empty segment means "append to a list".
fn split_key(key: &str) -> Result<Vec<String>, ApiError> {
    let malformed = || ApiError::invalid_request(None, format!("Invalid parameter name: {key}"));
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(malformed());
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let close = inner.find(']').ok_or_else(malformed)?;
        path.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
        if path.len() > MAX_DEPTH {
            return Err(malformed());
        }
    }
    Ok(path)
}

fn insert(
    map: &mut BTreeMap<String, Value>,
    raw: &str,
    path: &[String],
    value: String,
) -> Result<(), ApiError> {
    let conflict = || {
        ApiError::invalid_request(
            None,
            format!("Invalid parameter: {raw} conflicts with another parameter of the same name"),
        )
    };
    let (first, rest) = path
        .split_first()
        .expect("split_key never returns an empty path");
    if rest.is_empty() {
        // The last value wins for repeated scalars, as in Stripe's parser.
        return match map.get(first) {
            None | Some(Value::Str(_)) => {
                map.insert(first.clone(), Value::Str(value));
                Ok(())
            }
            Some(Value::Map(_) | Value::List(_)) => Err(conflict()),
        };
    }
    if rest[0].is_empty() {
        // `a[]=x` appends to the list `a`; nothing may follow `[]`.
        if rest.len() > 1 {
            return Err(ApiError::invalid_request(
                None,
                format!("Invalid parameter name: {raw}"),
            ));
        }
        let slot = map
            .entry(first.clone())
            .or_insert_with(|| Value::List(Vec::new()));
        return match slot {
            Value::List(items) => {
                items.push(Value::Str(value));
                Ok(())
            }
            Value::Str(_) | Value::Map(_) => Err(conflict()),
        };
    }
    let slot = map
        .entry(first.clone())
        .or_insert_with(|| Value::Map(BTreeMap::new()));
    match slot {
        Value::Map(inner) => insert(inner, raw, rest, value),
        Value::Str(s) if s.is_empty() => {
            // `metadata=` followed by `metadata[k]=v`: the empty value only meant "clear".
            let mut inner = BTreeMap::new();
            insert(&mut inner, raw, rest, value)?;
            *slot = Value::Map(inner);
            Ok(())
        }
        Value::Str(_) | Value::List(_) => Err(conflict()),
    }
}

impl Params {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A canonical rendering of all parameters, for idempotency fingerprints.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&self.entries).unwrap_or_default()
    }

    /// The bracketed name of `key` at this level (`invoice_settings[default_payment_method]`).
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}[{key}]", self.prefix)
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.entries.remove(key)
    }

    /// A string parameter; an empty string counts as absent (Stripe's "unset").
    pub fn string(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Str(s)) if s.is_empty() => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::Map(_) | Value::List(_)) => Err(ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_string"),
                format!("Invalid string: {}", self.name(key)),
            )),
        }
    }

    /// Like [`Params::string`], but an empty string is returned as `Some("")` so that updates
    /// can tell "clear this" from "leave it".
    pub fn string_or_empty(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::Map(_) | Value::List(_)) => Err(ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_string"),
                format!("Invalid string: {}", self.name(key)),
            )),
        }
    }

    pub fn required_string(&mut self, key: &str) -> Result<String, ApiError> {
        self.string(key)?
            .ok_or_else(|| ApiError::missing(&self.name(key)))
    }

    pub fn integer(&mut self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_integer"),
                format!("Invalid integer: {s}"),
            )
        })
    }

    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        match s.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_boolean"),
                format!("Invalid boolean: {s}"),
            )),
        }
    }

    /// One of `allowed`, or a 400 listing them.
    pub fn one_of(&mut self, key: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        if allowed.contains(&s.as_str()) {
            Ok(Some(s))
        } else {
            Err(ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_string"),
                format!(
                    "Invalid {}: must be one of {}",
                    self.name(key),
                    allowed.join(", ")
                ),
            ))
        }
    }

    /// A list of strings, written `a[]=x` or `a[0]=x`.
    pub fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        let invalid = |name: String| {
            ApiError::invalid_param(
                name.clone(),
                Some("parameter_invalid_array"),
                format!("Invalid array: {name}"),
            )
        };
        match self.take(key) {
            None => Ok(None),
            Some(Value::Str(s)) if s.is_empty() => Ok(Some(Vec::new())),
            Some(Value::List(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s),
                    Value::Map(_) | Value::List(_) => Err(invalid(self.name(key))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Value::Map(indexed)) => {
                let mut items = Vec::with_capacity(indexed.len());
                for (index, v) in indexed {
                    let i: usize = index.parse().map_err(|_| invalid(self.name(key)))?;
                    match v {
                        Value::Str(s) => items.push((i, s)),
                        Value::Map(_) | Value::List(_) => return Err(invalid(self.name(key))),
                    }
                }
                items.sort_by_key(|(i, _)| *i);
                Ok(Some(items.into_iter().map(|(_, s)| s).collect()))
            }
            Some(Value::Str(_)) => Err(invalid(self.name(key))),
        }
    }

    /// A flat string map such as `metadata`. `Some(empty)` when sent as `metadata=` (clear);
    /// values may be empty strings (Stripe: "unset this key").
    pub fn string_map(&mut self, key: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Str(s)) if s.is_empty() => Ok(Some(BTreeMap::new())),
            Some(Value::Map(entries)) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    match v {
                        Value::Str(s) => {
                            out.insert(k, s);
                        }
                        Value::Map(_) | Value::List(_) => {
                            let name = format!("{}[{k}]", self.name(key));
                            return Err(ApiError::invalid_param(
                                name.clone(),
                                Some("parameter_invalid_string"),
                                format!("Invalid string: {name}"),
                            ));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(Value::Str(_) | Value::List(_)) => Err(ApiError::invalid_param(
                self.name(key),
                Some("parameter_invalid_object"),
                format!("Invalid object: {}", self.name(key)),
            )),
        }
    }

    /// Whether `key` was sent as an object (`key[sub]=…`) rather than a plain value.
    pub fn is_object(&self, key: &str) -> bool {
        matches!(self.entries.get(key), Some(Value::Map(_)))
    }

    /// A nested object such as `invoice_settings`, read with the same rules.
    pub fn nested(&mut self, key: &str) -> Result<Option<Params>, ApiError> {
        let name = self.name(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Str(s)) if s.is_empty() => Ok(Some(Params {
                prefix: name,
                entries: BTreeMap::new(),
            })),
            Some(Value::Map(entries)) => Ok(Some(Params {
                prefix: name,
                entries,
            })),
            Some(Value::Str(_) | Value::List(_)) => Err(ApiError::invalid_param(
                name.clone(),
                Some("parameter_invalid_object"),
                format!("Invalid object: {name}"),
            )),
        }
    }

    /// Fails with `parameter_unknown` for the first parameter nobody read.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.entries.into_iter().next() {
            None => Ok(()),
            Some((key, value)) => {
                let mut name = if self.prefix.is_empty() {
                    key
                } else {
                    format!("{}[{key}]", self.prefix)
                };
                // Name the first leaf, as Stripe does (`card[number]`, not `card`).
                let mut v = value;
                while let Value::Map(inner) = v {
                    match inner.into_iter().next() {
                        Some((k, inner_v)) => {
                            name = format!("{name}[{k}]");
                            v = inner_v;
                        }
                        None => break,
                    }
                }
                Err(ApiError::unknown_param(&name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_nest_and_lists_append() {
        let mut p = parse(b"amount=2000&metadata[order]=A%201&metadata[tier]=gold&expand[]=latest_charge&expand[]=customer").unwrap();
        assert_eq!(p.integer("amount").unwrap(), Some(2000));
        let meta = p.string_map("metadata").unwrap().unwrap();
        assert_eq!(meta["order"], "A 1");
        assert_eq!(meta["tier"], "gold");
        assert_eq!(
            p.string_list("expand").unwrap().unwrap(),
            vec!["latest_charge", "customer"]
        );
        p.finish().unwrap();
    }

    #[test]
    fn indexed_lists_as_official_libraries_send_them() {
        let mut p = parse(b"expand[1]=b&expand[0]=a&expand[10]=c").unwrap();
        assert_eq!(
            p.string_list("expand").unwrap().unwrap(),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn leftover_parameters_are_named_in_bracket_form() {
        let p = parse(b"card[number]=x").unwrap();
        let err = p.finish().unwrap_err();
        assert_eq!(err.code.as_deref(), Some("parameter_unknown"));
        assert_eq!(err.param.as_deref(), Some("card[number]"));

        let mut p =
            parse(b"invoice_settings[default_payment_method]=pm_1&invoice_settings[footer_x]=y")
                .unwrap();
        let mut inner = p.nested("invoice_settings").unwrap().unwrap();
        assert_eq!(
            inner.string("default_payment_method").unwrap().as_deref(),
            Some("pm_1")
        );
        assert_eq!(
            inner.finish().unwrap_err().param.as_deref(),
            Some("invoice_settings[footer_x]")
        );
    }

    #[test]
    fn type_errors_name_the_parameter() {
        let mut p = parse(b"amount=12.5&confirm=yes&metadata=x").unwrap();
        let err = p.integer("amount").unwrap_err();
        assert_eq!(
            (err.code.as_deref(), err.param.as_deref()),
            (Some("parameter_invalid_integer"), Some("amount"))
        );
        let err = p.boolean("confirm").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("confirm"));
        let err = p.string_map("metadata").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("metadata"));
    }

    #[test]
    fn malformed_names_and_conflicts_are_400s() {
        for bad in [
            "a[b=1",
            "[x]=1",
            "a]b[=1",
            "a[][b]=1",
            "a=1&a[b]=2",
            "a[b]=1&a[]=2",
        ] {
            let err = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
        let deep = format!("a{}=1", "[x]".repeat(20));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn canonical_form_ignores_parameter_order() {
        let a = parse(b"amount=1&currency=usd&metadata[a]=1&metadata[b]=2").unwrap();
        let b = parse(b"metadata[b]=2&currency=usd&metadata[a]=1&amount=1").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let c = parse(b"amount=2&currency=usd").unwrap();
        assert_ne!(a.canonical(), c.canonical());
    }
}
