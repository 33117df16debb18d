//! The `auth:` section of the `http` input and output, as ArkFlow writes it, and the codecs'
//! `registry_auth`: `{type: bearer, token}` or `{type: basic, username, password}`.
//!
//! Contract: every user reduces it to the one `Authorization` header value it stands for: the
//! input compares a request's header with it (in constant time), the output and the registry
//! client send it. The value
//! never appears in logs or errors (Debug redacts it).

use crate::config::{ConfigError, Ctx, YPath};
use base64::Engine as _;

/// The `Authorization` header value of an `auth:` section.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    header: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(<redacted>)")
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Auth {
    /// Checks `raw` (at `path`: the `auth` key) and builds its header value.
    pub(crate) fn from_raw(ctx: &Ctx, raw: RawAuth, path: &YPath) -> Result<Auth, ConfigError> {
        let required = |v: Option<String>, key: &str| {
            let at = path.key(key);
            match v {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ctx.invalid(&at, format!("{at} is required (a non-empty string) for auth type {}", raw.kind))),
            }
        };
        let header = match raw.kind.as_str() {
            "bearer" => format!("Bearer {}", required(raw.token.clone(), "token")?),
            "basic" => {
                let user = required(raw.username.clone(), "username")?;
                let password = raw.password.clone().unwrap_or_default();
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
            }
            other => return Err(ctx.unknown_name(&path.key("type"), "auth type", other, &["bearer", "basic"])),
        };
        Ok(Auth { header })
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Whether a request's `Authorization` header carries this value (constant time in its
    /// length, so the comparison does not tell how much of a guess was right).
    pub fn admits(&self, given: Option<&[u8]>) -> bool {
        let Some(given) = given else { return false };
        let want = self.header.as_bytes();
        given.len() == want.len() && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `auth` of an http output in a whole config.
    fn auth(section: &str) -> Result<Auth, ConfigError> {
        let yaml = format!("streams:\n  - input: {{type: memory, messages: [a]}}\n    output: {{type: http, url: 'http://127.0.0.1:1/x', auth: {section}}}\n");
        let cfg = crate::config::EngineConfig::from_yaml_str(&yaml, None)?;
        Ok(cfg.streams[0].output.get::<crate::connectors::output::HttpOutputConfig>().unwrap().auth.clone().unwrap())
    }

    #[test]
    fn bearer_and_basic_headers_are_admitted_and_others_not() {
        let b = auth("{type: bearer, token: s3cret}").unwrap();
        assert!(b.admits(Some(b"Bearer s3cret")));
        assert!(!b.admits(Some(b"Bearer s3cres")) && !b.admits(None) && !b.admits(Some(b"Bearer s3cret ")));
        assert_eq!(auth("{type: basic, username: u, password: p}").unwrap().header(), "Basic dTpw");
        assert!(!format!("{b:?}").contains("s3cret"));
        assert!(auth("{type: bearer}").unwrap_err().to_string().contains("auth.token is required"));
        assert!(auth("{type: digest}").unwrap_err().to_string().contains("digest"));
    }
}
