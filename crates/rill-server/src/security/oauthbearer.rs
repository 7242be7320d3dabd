//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with signed JWTs checked as
//! Kafka's broker-side validator does them (KIP-768): the client sends
//! `n,,\x01auth=Bearer TOKEN\x01\x01`; the token's signature must verify
//! with a key of the configured JWKS (RS256/384/512, PS256/384/512,
//! ES256/384; an unsigned `none` token never passes), it must not have
//! expired (`exp`, required) nor be issued in the future (`iat`, `nbf`),
//! allowing `sasl.oauthbearer.clock.skew.seconds`; its audience must
//! include `sasl.oauthbearer.expected.audience` and its issuer be
//! `sasl.oauthbearer.expected.issuer` when those are set; and its
//! `sasl.oauthbearer.sub.claim.name` claim (`sub`) names the principal.
//!
//! The JWKS is read at start-up from `sasl.oauthbearer.jwks.endpoint.url`,
//! a `file:` URL or a path; fetching it over HTTP is not supported.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use crate::properties::ConfigError;

pub(crate) const OAUTHBEARER_MECHANISM: &str = "OAUTHBEARER";

/// A public key of the JWKS.
#[derive(Clone, Debug)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (`04 || x || y`) on P-256 or P-384.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

#[derive(Clone, Debug)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

/// How OAUTHBEARER tokens are checked.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    keys: Vec<Jwk>,
    audience: Vec<String>,
    issuer: Option<String>,
    subject_claim: String,
    clock_skew_ms: i64,
}

/// A token that passed, and what it says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Validated {
    pub subject: String,
    /// `exp`, in milliseconds since the epoch.
    pub expires_ms: i64,
}

/// Why a token was refused; the text is logged, never the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("the client's message is not an OAUTHBEARER initial response with a Bearer token")]
    NotBearer,
    #[error("the token is not a signed JWT (header.payload.signature)")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key of the JWKS matches the token's kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (iat or nbf in the future)")]
    NotYetValid,
    #[error("the token's audience does not include the expected one")]
    WrongAudience,
    #[error("the token's issuer is not the expected one")]
    WrongIssuer,
    #[error("the token has no {0:?} claim to name the principal")]
    NoSubject(String),
}

impl OAuthSettings {
    /// The settings when `sasl.enabled.mechanisms` offers OAUTHBEARER:
    /// `value(name)` is a property's value (or its default).
    pub(crate) fn from_properties(
        value: impl Fn(&str) -> Option<String>,
    ) -> Result<OAuthSettings, ConfigError> {
        let invalid = |name: &str, value: &str, expected: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        };
        let url_name = "sasl.oauthbearer.jwks.endpoint.url";
        let url = value(url_name).unwrap_or_default();
        let path = match url.trim() {
            "" => {
                return Err(invalid(
                    url_name,
                    "",
                    "a JWKS file (file:///path or a path) to check OAUTHBEARER tokens against",
                ));
            }
            u if u.starts_with("http://") || u.starts_with("https://") => {
                return Err(invalid(
                    url_name,
                    u,
                    "a file: URL or a path: Rill reads the JWKS from a file, not from an HTTP endpoint yet",
                ));
            }
            u => PathBuf::from(u.strip_prefix("file://").unwrap_or(u)),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(url_name, &url, &format!("a readable JWKS file ({e})")))?;
        let keys = parse_jwks(&text)
            .map_err(|message| invalid(url_name, &url, &format!("a JWKS ({message})")))?;
        let audience = value("sasl.oauthbearer.expected.audience")
            .unwrap_or_default()
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let issuer = value("sasl.oauthbearer.expected.issuer")
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty());
        let skew_name = "sasl.oauthbearer.clock.skew.seconds";
        let skew = value(skew_name).unwrap_or_else(|| "30".into());
        let clock_skew_ms = skew
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| invalid(skew_name, &skew, "seconds, 0 or more"))?
            .saturating_mul(1000);
        Ok(OAuthSettings {
            keys,
            audience,
            issuer,
            subject_claim: value("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
            clock_skew_ms,
        })
    }

    /// Checks `token` at `now_ms`.
    pub(crate) fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let json = |bytes: Vec<u8>| {
            serde_json::from_slice::<BTreeMap<String, Value>>(&bytes)
                .map_err(|_| TokenError::Malformed)
        };
        let header = json(decode(header)?)?;
        let claims = json(decode(payload)?)?;
        let signature = decode(signature)?;
        let algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let signed = &token.as_bytes()[..token.rfind('.').unwrap_or(0)];
        let candidates: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|jwk| kid.is_none() || jwk.kid == kid)
            .collect();
        if candidates.is_empty() {
            // The kid is the client's, and the error is logged: cut short.
            let kid = kid.map(|kid| kid.chars().take(64).collect());
            return Err(TokenError::UnknownKey(kid));
        }
        let mut verified = false;
        for jwk in candidates {
            verified |= verify(&algorithm, &jwk.key, signed, &signature)?;
        }
        if !verified {
            return Err(TokenError::BadSignature);
        }
        let seconds = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_f64)
                .map(|s| (s * 1000.0) as i64)
        };
        let expires_ms = seconds("exp").ok_or(TokenError::NoExpiry)?;
        if now_ms >= expires_ms.saturating_add(self.clock_skew_ms) {
            return Err(TokenError::Expired);
        }
        for claim in ["iat", "nbf"] {
            if seconds(claim).is_some_and(|at| at > now_ms.saturating_add(self.clock_skew_ms)) {
                return Err(TokenError::NotYetValid);
            }
        }
        if !self.audience.is_empty() {
            let audiences: Vec<&str> = match claims.get("aud") {
                Some(Value::String(one)) => vec![one.as_str()],
                Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !self
                .audience
                .iter()
                .any(|a| audiences.contains(&a.as_str()))
            {
                return Err(TokenError::WrongAudience);
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(TokenError::WrongIssuer);
            }
        }
        let subject = claims
            .get(&self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::NoSubject(self.subject_claim.clone()))?;
        Ok(Validated {
            subject: subject.to_string(),
            expires_ms,
        })
    }
}

/// Whether `signature` over `signed` verifies with `key` under JWS
/// algorithm `algorithm`; an algorithm the key cannot do is `false`, one
/// Rill does not accept an error.
fn verify(
    algorithm: &str,
    key: &PublicKey,
    signed: &[u8],
    signature: &[u8],
) -> Result<bool, TokenError> {
    let rsa: &signature::RsaParameters = match algorithm {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        "ES256" | "ES384" => {
            let (wanted, curve_algorithm) = if algorithm == "ES256" {
                (Curve::P256, &signature::ECDSA_P256_SHA256_FIXED)
            } else {
                (Curve::P384, &signature::ECDSA_P384_SHA384_FIXED)
            };
            return Ok(match key {
                PublicKey::Ec { curve, point } if *curve == wanted => {
                    UnparsedPublicKey::new(curve_algorithm, point)
                        .verify(signed, signature)
                        .is_ok()
                }
                _ => false,
            });
        }
        other => return Err(TokenError::Algorithm(other.chars().take(16).collect())),
    };
    Ok(match key {
        PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
            .verify(rsa, signed, signature)
            .is_ok(),
        PublicKey::Ec { .. } => false,
    })
}

/// The keys of a JWKS document (`{"keys": [...]}`) that can verify
/// signatures: RSA, and EC on P-256 or P-384.
fn parse_jwks(text: &str) -> Result<Vec<Jwk>, String> {
    let document: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let field = |key: &Value, name: &str| -> Result<Vec<u8>, String> {
        let text = key
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a key without {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("{name:?}: {e}"))
    };
    let mut out = Vec::new();
    for key in keys {
        if key
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let public = match key.get("kty").and_then(Value::as_str) {
            Some("RSA") => PublicKey::Rsa {
                n: field(key, "n")?,
                e: field(key, "e")?,
            },
            Some("EC") => {
                let curve = match key.get("crv").and_then(Value::as_str) {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    _ => continue,
                };
                let mut point = vec![4u8];
                point.extend(field(key, "x")?);
                point.extend(field(key, "y")?);
                PublicKey::Ec { curve, point }
            }
            _ => continue,
        };
        out.push(Jwk {
            kid: key.get("kid").and_then(Value::as_str).map(str::to_string),
            key: public,
        });
    }
    if out.is_empty() {
        return Err("no RSA or EC (P-256, P-384) signing key".into());
    }
    Ok(out)
}

/// The token of a client's initial response (RFC 7628 §3.1):
/// `GS2HEADER \x01 auth=Bearer TOKEN \x01 [key=value \x01]... \x01`.
pub(crate) fn bearer_token(message: &[u8]) -> Result<&str, TokenError> {
    let text = std::str::from_utf8(message).map_err(|_| TokenError::NotBearer)?;
    let mut fields = text.split('\x01');
    let gs2 = fields.next().ok_or(TokenError::NotBearer)?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) {
        return Err(TokenError::NotBearer);
    }
    fields
        .find_map(|field| field.strip_prefix("auth="))
        .and_then(|auth| {
            let (scheme, token) = auth.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(TokenError::NotBearer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    struct Issuer {
        key: EcdsaKeyPair,
        jwks: String,
    }

    fn issuer(kid: &str) -> Issuer {
        let random = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
        .to_string();
        Issuer { key, jwks }
    }

    fn token(issuer: &Issuer, kid: &str, claims: Value) -> String {
        let header = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let signature = issuer
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn settings(jwks: &str, properties: &[(&str, &str)]) -> OAuthSettings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks).unwrap();
        let url = format!("file://{}", path.display());
        let mut given: BTreeMap<&str, String> = [("sasl.oauthbearer.jwks.endpoint.url", url)]
            .into_iter()
            .collect();
        for (k, v) in properties {
            given.insert(k, v.to_string());
        }
        OAuthSettings::from_properties(|name| given.get(name).cloned()).unwrap()
    }

    const NOW_MS: i64 = 1_800_000_000_000;

    #[test]
    fn a_signed_current_token_names_its_subject() {
        let issuer = issuer("k1");
        let settings = settings(
            &issuer.jwks,
            &[
                ("sasl.oauthbearer.expected.audience", "rill"),
                ("sasl.oauthbearer.expected.issuer", "https://idp"),
            ],
        );
        let good = token(
            &issuer,
            "k1",
            serde_json::json!({"sub": "alice", "exp": NOW_MS / 1000 + 60, "iat": NOW_MS / 1000,
                "aud": ["other", "rill"], "iss": "https://idp"}),
        );
        assert_eq!(
            settings.validate(&good, NOW_MS),
            Ok(Validated {
                subject: "alice".into(),
                expires_ms: NOW_MS + 60_000
            })
        );
    }

    #[test]
    fn bad_signatures_expiry_audience_issuer_and_algorithms_are_refused() {
        let issuer_key = issuer("k1");
        let stranger = issuer("k1");
        let settings = settings(
            &issuer_key.jwks,
            &[
                ("sasl.oauthbearer.expected.audience", "rill"),
                ("sasl.oauthbearer.expected.issuer", "https://idp"),
                ("sasl.oauthbearer.clock.skew.seconds", "0"),
            ],
        );
        let claims = |exp: i64, aud: &str, iss: &str| serde_json::json!({"sub": "alice", "exp": exp, "aud": aud, "iss": iss});
        let valid_exp = NOW_MS / 1000 + 60;
        let check = |token: String| settings.validate(&token, NOW_MS);
        assert_eq!(
            check(token(
                &stranger,
                "k1",
                claims(valid_exp, "rill", "https://idp")
            )),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            check(token(
                &issuer_key,
                "k1",
                claims(NOW_MS / 1000 - 1, "rill", "https://idp")
            )),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check(token(
                &issuer_key,
                "k1",
                claims(valid_exp, "elsewhere", "https://idp")
            )),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check(token(
                &issuer_key,
                "k1",
                claims(valid_exp, "rill", "https://evil")
            )),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check(token(
                &issuer_key,
                "k2",
                claims(valid_exp, "rill", "https://idp")
            )),
            Err(TokenError::UnknownKey(Some("k2".into())))
        );
        assert_eq!(
            check(token(
                &issuer_key,
                "k1",
                serde_json::json!({"sub": "a", "aud": "rill", "iss": "https://idp"})
            )),
            Err(TokenError::NoExpiry)
        );
        // An unsigned token (alg none) with a valid-looking body.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims(valid_exp, "rill", "https://idp").to_string())
        );
        assert_eq!(check(unsigned), Err(TokenError::Algorithm("none".into())));
        // A signature moved onto another body.
        let real = token(&issuer_key, "k1", claims(valid_exp, "rill", "https://idp"));
        let forged_body = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": "admin", "exp": valid_exp, "aud": "rill", "iss": "https://idp"})
                .to_string(),
        );
        let parts: Vec<&str> = real.split('.').collect();
        assert_eq!(
            check(format!("{}.{forged_body}.{}", parts[0], parts[2])),
            Err(TokenError::BadSignature)
        );
        assert_eq!(check("not.a-jwt".into()), Err(TokenError::Malformed));
    }

    #[test]
    fn rsa_keys_verify_rs256_tokens() {
        // An RSA key made by openssl, as an identity provider's would be.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let der = dir.path().join("key.der");
        let run = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "openssl {args:?}");
        };
        run(&["genrsa", "-out", pem.to_str().unwrap(), "2048"]);
        run(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            pem.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        let key = ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(&der).unwrap()).unwrap();
        let components: ring::signature::RsaPublicKeyComponents<Vec<u8>> = key.public().into();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1",
            "n": URL_SAFE_NO_PAD.encode(&components.n), "e": URL_SAFE_NO_PAD.encode(&components.e)}]})
        .to_string();
        let settings = settings(&jwks, &[]);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"r1"}"#);
        let payload = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"sub": "svc", "exp": NOW_MS / 1000 + 5}).to_string());
        let signed = format!("{header}.{payload}");
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .unwrap();
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature));
        assert_eq!(settings.validate(&token, NOW_MS).unwrap().subject, "svc");
    }

    #[test]
    fn the_initial_response_carries_the_bearer_token() {
        assert_eq!(
            bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(b"n,a=alice,\x01host=x\x01auth=bearer t.o.k\x01\x01"),
            Ok("t.o.k")
        );
        for bad in [
            &b"auth=Bearer x"[..],
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01\x01",
            b"\xff",
        ] {
            assert_eq!(bearer_token(bad), Err(TokenError::NotBearer), "{bad:?}");
        }
    }
}
