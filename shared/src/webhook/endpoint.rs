//! A tenant's webhook endpoint: where its events go, which ones, and the secrets that sign
//! them. What the API accepts is checked here, as pure functions that name the field at fault.

use serde::{Deserialize, Serialize};

use crate::ids::WebhookEndpointId;
use crate::payment::EventKind;
use crate::time::Timestamp;

/// Endpoints per tenant: each event is delivered to each of them, so the fan-out is bounded.
pub const MAX_ENDPOINTS: usize = 16;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Longest overlap of a rotated secret.
pub const MAX_OVERLAP_SECS: u64 = 7 * 86_400;

/// An event type an endpoint wants, or every type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Selector {
    All,
    Kind(EventKind),
}

impl TryFrom<String> for Selector {
    type Error = String;

    fn try_from(s: String) -> Result<Selector, String> {
        if s == "*" {
            return Ok(Selector::All);
        }
        EventKind::parse(&s)
            .map(Selector::Kind)
            .ok_or_else(|| format!("`{s}` is not an event type (or `*` for all)"))
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        match s {
            Selector::All => "*".to_owned(),
            Selector::Kind(kind) => kind.as_str().to_owned(),
        }
    }
}

/// An endpoint as the API shows it (never with its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: WebhookEndpointId,
    /// Always `webhook_endpoint`.
    pub object: String,
    pub url: String,
    /// Event types, or `["*"]` for all.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub enabled_events: Vec<Selector>,
    pub description: Option<String>,
    /// A disabled endpoint is sent nothing (deliveries waiting for it are dropped).
    pub disabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// Whether the endpoint is sent events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        !self.disabled
            && self
                .enabled_events
                .iter()
                .any(|s| *s == Selector::All || *s == Selector::Kind(kind))
    }
}

/// A secret that signs deliveries, until `expires_at` when one is set (a rotated-out secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// An endpoint as stored: with its secrets, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub secrets: Vec<SigningSecret>,
}

impl StoredEndpoint {
    /// The secrets that sign a delivery sent at `now`, newest first.
    pub fn live_secrets(&self, now: Timestamp) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
    }

    /// Starts signing with `secret`; the current one signs `overlap` longer, then stops. Any
    /// older secret stops now: at most two secrets ever sign (the header stays small, and a
    /// rotation meant to retire a leaked secret does retire it).
    pub fn rotate(&mut self, secret: String, overlap: std::time::Duration, now: Timestamp) {
        let until = now.plus(overlap);
        let live = |s: &&SigningSecret| s.expires_at.is_none_or(|at| at > now);
        // The current secret: the one without an expiry, else the newest still signing.
        let previous = self
            .secrets
            .iter()
            .filter(live)
            .find(|s| s.expires_at.is_none())
            .or_else(|| self.secrets.iter().find(live))
            .map(|s| SigningSecret {
                secret: s.secret.clone(),
                expires_at: Some(s.expires_at.map_or(until, |at| at.min(until))),
            })
            .filter(|s| s.expires_at.is_some_and(|at| at > now));
        self.secrets = std::iter::once(SigningSecret {
            secret,
            expires_at: None,
        })
        .chain(previous)
        .collect();
    }
}

/// A field the API refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub param: &'static str,
    pub message: String,
}

fn invalid(param: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        param,
        message: message.into(),
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local (the
/// cloud metadata service), shared (CGNAT), unspecified, multicast or reserved. Deliveries go
/// only to such addresses unless `[webhooks] allow_private_networks`, so an endpoint cannot make
/// the workers call services inside the platform's network.
pub fn public_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let octets = v6.octets();
            let embedded = |at: usize| {
                std::net::Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3])
            };
            // Forms that carry an IPv4 address, which is what they reach: mapped
            // (::ffff:a.b.c.d), compatible (::a.b.c.d), translated (::ffff:0:a.b.c.d), NAT64
            // (64:ff9b::/96, 64:ff9b:1::/48) and 6to4 (2002::/16).
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_address(IpAddr::V4(v4));
            }
            if seg[..6] == [0; 6] || seg[..6] == [0, 0, 0, 0, 0xffff, 0] {
                return public_address(IpAddr::V4(embedded(12)));
            }
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || seg[..3] == [0x64, 0xff9b, 1] {
                return public_address(IpAddr::V4(embedded(12)));
            }
            if seg[0] == 0x2002 {
                return public_address(IpAddr::V4(embedded(2)));
            }
            let first = seg[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && seg[1] == 0x0db8)
        }
    }
}

/// Checks an endpoint URL: absolute, `https` (or `http` when allowed), a host, no credentials
/// (they would be logged and shown), at most [`MAX_URL_LEN`]; unless private networks are
/// allowed, not `localhost` nor an address outside the public internet (a name is checked
/// again when a delivery resolves it). Returns it normalised.
pub fn url(raw: &str, allow_http: bool, allow_private: bool) -> Result<String, Invalid> {
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let parsed =
        url::Url::parse(raw).map_err(|e| invalid("url", format!("url is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(invalid(
                "url",
                "url must use https (http is allowed only with [webhooks] allow_http)",
            ));
        }
        other => return Err(invalid("url", format!("url must use https, not {other}"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "url must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("url", "url must not carry credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(invalid("url", "url must not have a fragment"));
    }
    if !allow_private {
        let private = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => !public_address(ip.into()),
            Some(url::Host::Ipv6(ip)) => !public_address(ip.into()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                name == "localhost" || name.ends_with(".localhost")
            }
            None => true,
        };
        if private {
            return Err(invalid(
                "url",
                "url must point at a public address (private networks are allowed only with [webhooks] allow_private_networks)",
            ));
        }
    }
    let normalised = parsed.to_string();
    if normalised.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    Ok(normalised)
}

/// Checks the event types an endpoint wants: at least one; `*` alone or types without it.
pub fn enabled_events(raw: &[String]) -> Result<Vec<Selector>, Invalid> {
    if raw.is_empty() {
        return Err(invalid(
            "enabled_events",
            "enabled_events must name at least one event type, or `*` for all",
        ));
    }
    let mut out: Vec<Selector> = Vec::with_capacity(raw.len());
    for s in raw {
        let selector = Selector::try_from(s.clone()).map_err(|m| invalid("enabled_events", m))?;
        if !out.contains(&selector) {
            out.push(selector);
        }
    }
    if out.contains(&Selector::All) && out.len() > 1 {
        return Err(invalid(
            "enabled_events",
            "enabled_events is either `*` alone or a list of event types",
        ));
    }
    Ok(out)
}

/// Checks a description: at most [`MAX_DESCRIPTION_LEN`] characters, no control characters.
pub fn description(raw: &str) -> Result<String, Invalid> {
    if raw.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(invalid(
            "description",
            "description must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn urls() {
        let cases: &[(&str, bool, Result<&str, &str>)] = &[
            (
                "https://example.com/hooks",
                false,
                Ok("https://example.com/hooks"),
            ),
            ("https://EXAMPLE.com", false, Ok("https://example.com/")),
            (
                "http://example.com:9000/h",
                true,
                Ok("http://example.com:9000/h"),
            ),
            (
                "http://example.com:9000/h",
                false,
                Err("url must use https (http"),
            ),
            (
                "https://127.0.0.1/h",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://[::1]/h",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://10.1.2.3/h",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://169.254.169.254/x",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://localhost:6443/",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://api.localhost/",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://[::ffff:192.168.0.1]/",
                false,
                Err("url must point at a public address"),
            ),
            (
                "https://93.184.216.34/h",
                false,
                Ok("https://93.184.216.34/h"),
            ),
            (
                "ftp://example.com",
                true,
                Err("url must use https, not ftp"),
            ),
            (
                "https://user:pw@example.com",
                false,
                Err("url must not carry credentials"),
            ),
            (
                "https://example.com/#x",
                false,
                Err("url must not have a fragment"),
            ),
            ("example.com/hooks", false, Err("url is not a URL")),
            ("https://", false, Err("url is not a URL")),
            ("", false, Err("url is not a URL")),
        ];
        for (raw, allow_http, want) in cases {
            let got = url(raw, *allow_http, false);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{raw}"),
                (Err(w), Err(e)) => {
                    assert_eq!(e.param, "url");
                    assert!(e.message.starts_with(w), "{raw}: {}", e.message);
                }
                _ => panic!("{raw}: {got:?}"),
            }
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(url(&long, false, false).is_err());
        // Measured once percent-encoded, as stored.
        let wide = format!("https://example.com/{}", "é".repeat(MAX_URL_LEN / 3));
        assert!(url(&wide, false, false).is_err());
        // A local receiver, when private networks are allowed.
        assert_eq!(
            url("http://127.0.0.1:9000/h", true, true),
            Ok("http://127.0.0.1:9000/h".to_owned())
        );
    }

    #[test]
    fn event_selections() {
        let s = |v: &[&str]| enabled_events(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["*"]), Ok(vec![Selector::All]));
        assert_eq!(
            s(&[
                "off_session_payment.succeeded",
                "off_session_payment.succeeded"
            ]),
            Ok(vec![Selector::Kind(EventKind::Succeeded)])
        );
        assert!(s(&[]).is_err());
        assert!(s(&["*", "off_session_payment.failed"]).is_err());
        let e = s(&["off_session_payment.charged"]).unwrap_err();
        assert_eq!(e.param, "enabled_events");
        assert!(e.message.contains("off_session_payment.charged"));
    }

    #[test]
    fn descriptions() {
        assert_eq!(description("billing"), Ok("billing".to_owned()));
        assert!(description("a\nb").is_err());
        assert!(description(&"x".repeat(MAX_DESCRIPTION_LEN + 1)).is_err());
    }

    fn endpoint(events: Vec<Selector>, disabled: bool) -> Endpoint {
        let now = Timestamp::from_unix_ms(0);
        Endpoint {
            id: WebhookEndpointId::generate(),
            object: "webhook_endpoint".into(),
            url: "https://example.com/".into(),
            enabled_events: events,
            description: None,
            disabled,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_endpoint_wants_what_it_enabled_unless_disabled() {
        let all = endpoint(vec![Selector::All], false);
        assert!(all.wants(EventKind::Created));
        let some = endpoint(vec![Selector::Kind(EventKind::Failed)], false);
        assert!(some.wants(EventKind::Failed));
        assert!(!some.wants(EventKind::Succeeded));
        assert!(!endpoint(vec![Selector::All], true).wants(EventKind::Created));
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_for_the_overlap_only() {
        let t0 = Timestamp::from_unix_ms(1_000_000);
        let mut e = StoredEndpoint {
            endpoint: endpoint(vec![Selector::All], false),
            secrets: vec![SigningSecret {
                secret: "whsec_old".into(),
                expires_at: None,
            }],
        };
        e.rotate("whsec_new".into(), Duration::from_secs(60), t0);
        let live: Vec<&str> = e.live_secrets(t0).collect();
        assert_eq!(live, ["whsec_new", "whsec_old"]);
        let after: Vec<&str> = e.live_secrets(t0.plus(Duration::from_secs(60))).collect();
        assert_eq!(after, ["whsec_new"]);
        // Rotating again drops what has expired, and never extends an earlier expiry.
        e.rotate(
            "whsec_newer".into(),
            Duration::from_secs(3600),
            t0.plus(Duration::from_secs(61)),
        );
        assert_eq!(e.secrets.len(), 2);
        assert_eq!(e.secrets[1].secret, "whsec_new");
    }

    #[test]
    fn however_often_it_is_rotated_at_most_two_secrets_sign() {
        let t0 = Timestamp::from_unix_ms(1_000_000);
        let mut e = StoredEndpoint {
            endpoint: endpoint(vec![Selector::All], false),
            secrets: vec![SigningSecret {
                secret: "whsec_0".into(),
                expires_at: None,
            }],
        };
        for i in 1..=200 {
            let at = t0.plus(Duration::from_secs(i));
            e.rotate(format!("whsec_{i}"), Duration::from_secs(86_400), at);
            let live: Vec<&str> = e.live_secrets(at).collect();
            let (new, previous) = (format!("whsec_{i}"), format!("whsec_{}", i - 1));
            assert_eq!(live, [new.as_str(), previous.as_str()]);
        }
        assert_eq!(e.secrets.len(), 2);
        // A zero overlap retires the current secret at once.
        let t1 = t0.plus(Duration::from_secs(1000));
        e.rotate("whsec_alone".into(), Duration::ZERO, t1);
        assert_eq!(e.live_secrets(t1).collect::<Vec<_>>(), ["whsec_alone"]);
    }

    #[test]
    fn public_addresses() {
        for (ip, public) in [
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2606:4700::1111", true),
            ("64:ff9b::808:808", true),
            ("127.0.0.1", false),
            ("10.0.0.1", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("198.18.0.1", false),
            ("192.0.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:0:7f00:1", false),
            ("::127.0.0.1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b:1::a00:1", false),
            ("2002:7f00:1::", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(public_address(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
