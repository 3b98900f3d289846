//! Our signed, expiring URLs: `expires=UNIX_SECONDS&sign=HEX`, where `sign` is
//! HMAC-SHA256(`auth.secret`, "ACTION\nSTREAM\nEXPIRES") in lower-case hex. The action is in
//! the signature, so a play URL cannot be used to publish.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::policy::DenyReason;
use super::request::{Action, Request};
use super::secret::{self, Secret};

/// The query string (no `?`) that signs `action` on `stream` until `expires` (Unix seconds).
pub fn query(secret: &Secret, action: Action, stream: &str, expires: u64) -> String {
    format!("expires={expires}&sign={}", secret::hex(&mac(secret, action, stream, expires)))
}

/// Checks `expires` and `sign` of the request.
pub fn verify(secret: &Secret, req: &Request<'_>, now: u64) -> Result<(), DenyReason> {
    let (Some(expires), Some(sign)) = (req.param("expires"), req.param("sign")) else {
        return Err(DenyReason::NoCredentials);
    };
    let expires: u64 = expires.parse().map_err(|_| DenyReason::BadSignature)?;
    let presented = unhex(sign).ok_or(DenyReason::BadSignature)?;
    let mut m = keyed(secret);
    m.update(message(req.action, req.stream, expires).as_bytes());
    m.verify_slice(&presented).map_err(|_| DenyReason::BadSignature)?;
    if now > expires {
        return Err(DenyReason::Expired);
    }
    Ok(())
}

fn mac(secret: &Secret, action: Action, stream: &str, expires: u64) -> Vec<u8> {
    let mut m = keyed(secret);
    m.update(message(action, stream, expires).as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn keyed(secret: &Secret) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(secret.expose()).unwrap_or_else(|_| unreachable!())
}

fn message(action: Action, stream: &str, expires: u64) -> String {
    format!("{}\n{stream}\n{expires}", action.as_str())
}

/// A presented signature as bytes: hex (either case) of at most 128 bytes; None otherwise.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() > 256 {
        return None;
    }
    secret::unhex(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request::{parse_query, Entry};

    fn req<'a>(action: Action, stream: &'a str, query: &'a [(String, String)]) -> Request<'a> {
        Request::for_test(action, Entry::Rtmp, stream, "/live/x", query)
    }

    #[test]
    fn signed_urls_hold_until_they_expire_and_only_for_their_action_and_stream() {
        let s = Secret::new("k3y");
        let q = parse_query(&query(&s, Action::Publish, "room1", 1000));
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &q), 999), Ok(()));
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &q), 1000), Ok(()));
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &q), 1001), Err(DenyReason::Expired));
        assert_eq!(verify(&s, &req(Action::Play, "room1", &q), 10), Err(DenyReason::BadSignature));
        assert_eq!(verify(&s, &req(Action::Publish, "room2", &q), 10), Err(DenyReason::BadSignature));
        assert_eq!(
            verify(&Secret::new("other"), &req(Action::Publish, "room1", &q), 10),
            Err(DenyReason::BadSignature)
        );
        // A later expiry with the old signature does not pass.
        let forged: Vec<_> =
            q.iter().map(|(k, v)| (k.clone(), if k == "expires" { "9999".into() } else { v.clone() })).collect();
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &forged), 10), Err(DenyReason::BadSignature));
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &[]), 10), Err(DenyReason::NoCredentials));
        let upper: Vec<_> = q.iter().map(|(k, v)| (k.clone(), v.to_uppercase())).collect();
        assert_eq!(verify(&s, &req(Action::Publish, "room1", &upper), 10), Ok(()), "hex in either case");
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("k3y", "publish\nroom1\n1000"), computed with `openssl dgst -sha256 -hmac k3y`.
        let q = query(&Secret::new("k3y"), Action::Publish, "room1", 1000);
        assert_eq!(q, "expires=1000&sign=080a7e569b846cadc7e5421b241c06dce3b5a0200d0de9484246aa136e12e748");
    }
}
