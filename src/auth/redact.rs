//! Credentials cut out of what is logged or shown: URL passwords and the values of query
//! parameters that carry a secret.

/// Query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] =
    &["sign", "txsecret", "auth_key", "key", "token", "password", "pass", "pwd", "secret", "access_token", "signature"];

/// `text` (a URL, an RTMP app or stream name with its query) with secrets replaced by `***`.
pub fn redact(text: &str) -> String {
    let (head, query) = match text.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (text, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(query) = query {
        out.push('?');
        let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn redact_userinfo(head: &str) -> String {
    let Some((scheme, rest)) = head.split_once("://") else {
        return head.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_cut() {
        assert_eq!(redact("rtmp://cdn/live/KEY?sign=abc&expires=9"), "rtmp://cdn/live/KEY?sign=***&expires=9");
        assert_eq!(redact("KEY?txSecret=ff&txTime=65F0"), "KEY?txSecret=***&txTime=65F0");
        assert_eq!(redact("rtmp://u:pw@cdn:1935/app?auth_key=1-0-0-x"), "rtmp://u:***@cdn:1935/app?auth_key=***");
        assert_eq!(redact("http://h/p?Token=x#frag"), "http://h/p?Token=***#frag");
        assert_eq!(redact("plain"), "plain");
        assert_eq!(redact("room?user=alice&key"), "room?user=alice&key");
    }
}
