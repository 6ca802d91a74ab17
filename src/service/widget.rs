//! Who is chatting in the website widget. A browser cannot be trusted with a
//! customer id, so the widget carries two signed tokens:
//! - a visitor token kefu signs itself (`v1.<id>.<mac>`, the MAC a keyed hash
//!   of the data key), kept in the page's local storage so a returning
//!   visitor keeps their history;
//! - for a customer logged in to the shop, a customer token the shop's
//!   backend mints: a JWT (HS256) with `sub` = the customer id and `exp`,
//!   signed with a secret the shop shares with kefu, so nobody can claim
//!   another customer's id from the browser.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::privacy::vault::Vault;

/// The vault's keyed-hash purpose that signs visitor ids.
const VISITOR_PURPOSE: &str = "widget-visitor";

/// Seconds a customer token's `exp` may lie in the past (clocks differ).
const CLOCK_LEEWAY_SECS: i64 = 60;

/// Why the widget's caller was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WidgetError {
    #[error("the visitor token is missing or not signed by this server; start a new chat session")]
    BadVisitor,
    #[error("the customer token is not valid: {0}")]
    BadCustomerToken(&'static str),
    #[error("the customer token has expired; the shop should mint a new one")]
    ExpiredCustomerToken,
    #[error("this server accepts no customer tokens: set widget.customer_token_secret (KEFU_WIDGET_SECRET)")]
    NoCustomerTokens,
}

/// The person behind a widget.
#[derive(Debug, Clone, PartialEq)]
pub struct Visitor {
    pub visitor_id: String,
    /// The shop's customer id when they are logged in; the visitor's own id otherwise.
    pub customer_id: String,
    /// Whether a customer token named the customer.
    pub signed_in: bool,
}

impl Visitor {
    /// The widget's session: one per visitor.
    pub fn session_id(&self) -> String {
        format!("web-{}", self.visitor_id)
    }
}

/// Issues and checks the widget's tokens.
#[derive(Clone)]
pub struct WidgetGate {
    vault: Arc<Vault>,
    customer_secret: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct CustomerClaims {
    sub: String,
    exp: i64,
}

impl WidgetGate {
    pub fn new(vault: Arc<Vault>, customer_secret: Option<String>) -> WidgetGate {
        WidgetGate { vault, customer_secret: customer_secret.filter(|s| !s.is_empty()).map(String::into_bytes) }
    }

    /// A new visitor's signed token.
    pub fn new_visitor_token(&self) -> String {
        let id = super::new_id();
        format!("v1.{id}.{}", self.vault.blind(VISITOR_PURPOSE, &id))
    }

    /// The visitor id a token names, if this server signed it.
    pub fn visitor_id(&self, token: &str) -> Result<String, WidgetError> {
        let mut parts = token.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(id), Some(mac), None)
                if id.len() == 32
                    && id.bytes().all(|b| b.is_ascii_hexdigit())
                    && crate::support::same_secret(&self.vault.blind(VISITOR_PURPOSE, id), mac) =>
            {
                Ok(id.to_string())
            }
            _ => Err(WidgetError::BadVisitor),
        }
    }

    /// The visitor, logged in to the shop when a customer token is given.
    pub fn identify(
        &self,
        visitor_token: &str,
        customer_token: Option<&str>,
        now: i64,
    ) -> Result<Visitor, WidgetError> {
        let visitor_id = self.visitor_id(visitor_token)?;
        Ok(match customer_token.filter(|t| !t.is_empty()) {
            Some(token) => Visitor { visitor_id, customer_id: self.customer_id(token, now)?, signed_in: true },
            None => Visitor { customer_id: format!("visitor-{visitor_id}"), visitor_id, signed_in: false },
        })
    }

    /// The customer id a shop's token names, once its signature and expiry are checked.
    pub fn customer_id(&self, token: &str, now: i64) -> Result<String, WidgetError> {
        let secret = self.customer_secret.as_deref().ok_or(WidgetError::NoCustomerTokens)?;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(WidgetError::BadCustomerToken("a JWT has three parts"));
        };
        let decode =
            |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| WidgetError::BadCustomerToken("not base64url"));
        let header: JwtHeader =
            serde_json::from_slice(&decode(header)?).map_err(|_| WidgetError::BadCustomerToken("bad header"))?;
        // NOTE: the algorithm is fixed, never taken from the token ("none" or RS/HS confusion).
        if header.alg != "HS256" {
            return Err(WidgetError::BadCustomerToken("the algorithm must be HS256"));
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(&token.as_bytes()[..token.len() - signature.len() - 1]);
        mac.verify_slice(&decode(signature)?).map_err(|_| WidgetError::BadCustomerToken("wrong signature"))?;
        let claims: CustomerClaims = serde_json::from_slice(&decode(payload)?)
            .map_err(|_| WidgetError::BadCustomerToken("the payload needs sub (the customer id) and exp"))?;
        if claims.exp + CLOCK_LEEWAY_SECS < now {
            return Err(WidgetError::ExpiredCustomerToken);
        }
        let fits = !claims.sub.is_empty()
            && claims.sub.len() <= 128
            && !claims.sub.chars().any(|c| c.is_control() || c.is_whitespace());
        if !fits {
            return Err(WidgetError::BadCustomerToken("sub must be 1 to 128 printable characters without spaces"));
        }
        Ok(claims.sub)
    }
}

/// A customer token as a shop's backend mints it (HS256 JWT): for the demo
/// page, the CLI and tests; shops use any JWT library.
pub fn mint_customer_token(secret: &str, customer_id: &str, expires_at: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::json!({"sub": customer_id, "exp": expires_at}).to_string());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(secret: Option<&str>) -> WidgetGate {
        WidgetGate::new(Arc::new(Vault::ephemeral()), secret.map(str::to_string))
    }

    #[test]
    fn visitor_tokens_are_signed() {
        let gate = gate(None);
        let token = gate.new_visitor_token();
        let id = gate.visitor_id(&token).unwrap();
        let visitor = gate.identify(&token, None, 0).unwrap();
        assert_eq!(visitor.customer_id, format!("visitor-{id}"));
        assert!(!visitor.signed_in);
        let forged = format!("v1.{}.{}", "0".repeat(32), &token[token.len() - 32..]);
        assert_eq!(gate.visitor_id(&forged), Err(WidgetError::BadVisitor));
        assert_eq!(gate.visitor_id("v1.abc"), Err(WidgetError::BadVisitor));
        // Another server's (another key's) token is not ours.
        assert_eq!(self::gate(None).visitor_id(&token), Err(WidgetError::BadVisitor));
    }

    #[test]
    fn customer_tokens_are_checked() {
        let gate = gate(Some("shop-secret"));
        let visitor = gate.new_visitor_token();
        let token = mint_customer_token("shop-secret", "c1001", 1_000);
        let signed_in = gate.identify(&visitor, Some(&token), 900).unwrap();
        assert_eq!((signed_in.customer_id.as_str(), signed_in.signed_in), ("c1001", true));
        assert_eq!(gate.customer_id(&token, 2_000), Err(WidgetError::ExpiredCustomerToken));
        let forged = mint_customer_token("guess", "c1001", 1_000);
        assert_eq!(gate.customer_id(&forged, 900), Err(WidgetError::BadCustomerToken("wrong signature")));
        // A payload swapped under a valid signature.
        let other = mint_customer_token("shop-secret", "c1002", 1_000);
        let (h, rest) = token.split_once('.').unwrap();
        let sig = rest.split_once('.').unwrap().1;
        let swapped = format!("{h}.{}.{sig}", other.split('.').nth(1).unwrap());
        assert!(gate.customer_id(&swapped, 900).is_err());
        let none_alg =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), token.split('.').nth(1).unwrap());
        assert!(gate.customer_id(&none_alg, 900).is_err());
        assert_eq!(self::gate(None).customer_id(&token, 900), Err(WidgetError::NoCustomerTokens));
    }
}
