//! The signed-URL conventions of two large Chinese live CDNs, so a platform keeps the signing
//! code it already has:
//! - Tencent (`tencent`): `txSecret=md5(KEY + STREAM + txTime)&txTime=EXPIRY_HEX`, with
//!   txTime the expiry as hexadecimal Unix seconds.
//! - Alibaba Cloud (`aliyun`), type A: `auth_key=TIMESTAMP-RAND-UID-MD5`, with
//!   MD5 = md5("PATH-TIMESTAMP-RAND-UID-KEY"), PATH the request path (`/live/STREAM` for
//!   RTMP, `/live/STREAM.flv` for HTTP-FLV) and TIMESTAMP the expiry in Unix seconds, as
//!   ApsaraVideo Live uses it.

use md5::{Digest, Md5};

use super::policy::DenyReason;
use super::request::Request;
use super::secret::{self, Secret};

/// The Tencent-style query for `stream`, valid until `expires`.
pub fn tencent_query(key: &Secret, stream: &str, expires: u64) -> String {
    let tx_time = format!("{expires:X}");
    format!("txSecret={}&txTime={tx_time}", tencent_secret(key, stream, &tx_time))
}

pub fn tencent_verify(key: &Secret, req: &Request<'_>, now: u64) -> Result<(), DenyReason> {
    let (Some(tx_secret), Some(tx_time)) = (req.param("txSecret"), req.param("txTime")) else {
        return Err(DenyReason::NoCredentials);
    };
    if tx_time.is_empty() || tx_time.len() > 16 {
        return Err(DenyReason::BadSignature);
    }
    let expires = u64::from_str_radix(tx_time, 16).map_err(|_| DenyReason::BadSignature)?;
    let want = tencent_secret(key, req.stream, tx_time);
    if !secret::equal(want.as_bytes(), tx_secret.to_ascii_lowercase().as_bytes()) {
        return Err(DenyReason::BadSignature);
    }
    if now > expires {
        return Err(DenyReason::Expired);
    }
    Ok(())
}

fn tencent_secret(key: &Secret, stream: &str, tx_time: &str) -> String {
    let mut h = Md5::new();
    h.update(key.expose());
    h.update(stream.as_bytes());
    h.update(tx_time.as_bytes());
    secret::hex(&h.finalize())
}

/// The Alibaba-style query for `path`, valid until `expires` (rand and uid `0`).
pub fn aliyun_query(key: &Secret, path: &str, expires: u64) -> String {
    format!("auth_key={expires}-0-0-{}", aliyun_hash(key, path, &expires.to_string(), "0", "0"))
}

pub fn aliyun_verify(key: &Secret, req: &Request<'_>, now: u64) -> Result<(), DenyReason> {
    let Some(auth_key) = req.param("auth_key") else {
        return Err(DenyReason::NoCredentials);
    };
    let parts: Vec<&str> = auth_key.split('-').collect();
    let [timestamp, rand, uid, hash] = parts[..] else {
        return Err(DenyReason::BadSignature);
    };
    let expires: u64 = timestamp.parse().map_err(|_| DenyReason::BadSignature)?;
    let want = aliyun_hash(key, req.path, timestamp, rand, uid);
    if !secret::equal(want.as_bytes(), hash.to_ascii_lowercase().as_bytes()) {
        return Err(DenyReason::BadSignature);
    }
    if now > expires {
        return Err(DenyReason::Expired);
    }
    Ok(())
}

fn aliyun_hash(key: &Secret, path: &str, timestamp: &str, rand: &str, uid: &str) -> String {
    let mut h = Md5::new();
    h.update(format!("{path}-{timestamp}-{rand}-{uid}-").as_bytes());
    h.update(key.expose());
    secret::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request::{parse_query, Action, Entry};

    fn req<'a>(stream: &'a str, path: &'a str, query: &'a [(String, String)]) -> Request<'a> {
        Request::for_test(Action::Play, Entry::HttpFlv, stream, path, query)
    }

    #[test]
    fn tencent_matches_its_documented_formula() {
        // md5("mykey" + "room1" + "65F0A1B2"), computed with md5sum.
        let key = Secret::new("mykey");
        let q = tencent_query(&key, "room1", 0x65F0A1B2);
        assert_eq!(q, "txSecret=2b2ecb5bab00d69605e9cd0ddaca6c1f&txTime=65F0A1B2");
        let q = parse_query(&q);
        assert_eq!(tencent_verify(&key, &req("room1", "/live/room1", &q), 0x65F0A1B2), Ok(()));
        assert_eq!(tencent_verify(&key, &req("room1", "/live/room1", &q), 0x65F0A1B3), Err(DenyReason::Expired));
        assert_eq!(tencent_verify(&key, &req("room2", "/live/room2", &q), 0), Err(DenyReason::BadSignature));
        let lower = parse_query("txSecret=2B2ECB5BAB00D69605E9CD0DDACA6C1F&txTime=65f0a1b2");
        assert_eq!(
            tencent_verify(&key, &req("room1", "/", &lower), 0),
            Err(DenyReason::BadSignature),
            "txTime is signed as sent"
        );
        assert_eq!(tencent_verify(&key, &req("room1", "/", &[]), 0), Err(DenyReason::NoCredentials));
        for bad in ["txSecret=x&txTime=", "txSecret=x&txTime=zz", "txSecret=x&txTime=11111111111111111"] {
            assert_eq!(
                tencent_verify(&key, &req("room1", "/", &parse_query(bad)), 0),
                Err(DenyReason::BadSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn aliyun_type_a_signs_the_path() {
        // md5("/live/room1-1700000000-0-0-alikey"), computed with md5sum.
        let key = Secret::new("alikey");
        let q = aliyun_query(&key, "/live/room1", 1_700_000_000);
        assert_eq!(q, "auth_key=1700000000-0-0-e1a79d999bee63c8985482fd173e22bb");
        let q = parse_query(&q);
        assert_eq!(aliyun_verify(&key, &req("room1", "/live/room1", &q), 1_699_999_999), Ok(()));
        assert_eq!(aliyun_verify(&key, &req("room1", "/live/room1", &q), 1_700_000_001), Err(DenyReason::Expired));
        assert_eq!(aliyun_verify(&key, &req("room1", "/live/room1.flv", &q), 0), Err(DenyReason::BadSignature));
        for bad in ["auth_key=1-2-3", "auth_key=x-0-0-e1a79d999bee63c8985482fd173e22bb", "auth_key=1-0-0-0-0"] {
            assert_eq!(
                aliyun_verify(&key, &req("room1", "/live/room1", &parse_query(bad)), 0),
                Err(DenyReason::BadSignature),
                "{bad}"
            );
        }
    }
}
