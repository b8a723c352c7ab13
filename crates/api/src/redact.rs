//! Userinfo (`https://user:token@host/…`) out of everything we print or keep.
//!
//! A GitRepository URL may carry credentials. They are needed to clone, and
//! nowhere else: logs, status, the store, the API and error messages get the
//! URL without them, and any text that may quote the URL (a libgit2 or a
//! server's error) is scrubbed of both the full URL and the secret parts.

use std::borrow::Cow;

const MASK: &str = "***";

/// `url` without its userinfo: `https://user:pw@host/x` → `https://***@host/x`.
/// SCP-like `git@host:path` names only a user, not a secret, and is kept.
pub fn url(url: &str) -> Cow<'_, str> {
    match userinfo_span(url) {
        Some((start, end)) => Cow::Owned(format!("{}{MASK}{}", &url[..start], &url[end..])),
        None => Cow::Borrowed(url),
    }
}

/// `text` with every trace of `url`'s userinfo replaced: the URL itself, and
/// the password and user on their own (raw and percent-decoded), since error
/// messages quote them in pieces.
pub fn text(text: &str, url_with_secret: &str) -> String {
    let Some((start, end)) = userinfo_span(url_with_secret) else {
        return text.to_string();
    };
    let mut out = text.replace(url_with_secret, &url(url_with_secret));
    let info = &url_with_secret[start..end];
    let mut secrets: Vec<String> = Vec::new();
    for part in info.split(':').chain(std::iter::once(info)) {
        // A one- or two-letter user name would mask half the message.
        if part.len() >= 3 {
            secrets.push(part.to_string());
            let decoded = percent_decode(part);
            if decoded != part && decoded.len() >= 3 {
                secrets.push(decoded);
            }
        }
    }
    // Longest first, so the whole userinfo goes before its pieces.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(&s, MASK);
    }
    out
}

/// Byte range of the userinfo in `scheme://userinfo@host…`, if any.
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    (at > 0).then_some((scheme_end, scheme_end + at))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_userinfo() {
        for (input, want) in [
            (
                "https://user:tok3n@git.example/org/repo",
                "https://***@git.example/org/repo",
            ),
            ("https://tok3n@git.example/r", "https://***@git.example/r"),
            ("ssh://git@host:22/r", "ssh://***@host:22/r"),
            ("https://git.example/r@x", "https://git.example/r@x"),
            ("git@github.com:org/r", "git@github.com:org/r"),
            ("file:///srv/r", "file:///srv/r"),
            ("https://a:b@c@host/p", "https://***@host/p"),
        ] {
            assert_eq!(url(input), want, "{input}");
        }
    }

    #[test]
    fn messages_lose_the_url_and_its_pieces() {
        let u = "https://bot:s%40cret99@git.example/org/repo";
        let msg =
            format!("unable to clone '{u}': auth failed for user bot with s@cret99 (s%40cret99)");
        let got = text(&msg, u);
        assert_eq!(
            got,
            "unable to clone 'https://***@git.example/org/repo': auth failed for user *** with *** (***)"
        );
        assert!(!got.contains("cret99"));
        assert_eq!(
            text("nothing here", "https://git.example/r"),
            "nothing here"
        );
    }
}
