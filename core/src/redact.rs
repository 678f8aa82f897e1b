//! Redaction: what is removed from a message before it reaches a log event or a printed URL.

use std::borrow::Cow;

/// Replaces configured secrets and URL query strings (signatures, SAS tokens) in messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor of these secret values.
    pub(crate) fn new(mut secrets: Vec<String>) -> Self {
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// `text` with every secret replaced by `[redacted]` and every URL's query removed.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        // Most texts (every request's path) hold neither: no searching for them, no copy.
        if self.secrets.is_empty() && !text.contains(':') {
            return Cow::Borrowed(text);
        }
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        Cow::Owned(redact_queries(&text))
    }
}

/// `url` without its credentials and query, as it may be printed or hashed.
pub(crate) fn redacted_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.set_query(None);
    url.to_string()
}

/// Replaces the query string of every URL in `text`.
fn redact_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .map_or(rest.len(), |e| at + e);
        let url = &rest[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?[redacted]");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_redacted() {
        assert_eq!(
            redact_queries("GET https://acct.blob/x?sig=abc&se=1 failed, see http://h/p"),
            "GET https://acct.blob/x?[redacted] failed, see http://h/p"
        );
    }

    #[test]
    fn secrets_are_replaced_longest_first() {
        let r = Redactor::new(vec!["abcd".into(), "abcdefgh".into()]);
        assert_eq!(
            r.redact("key abcdefgh and abcd"),
            "key [redacted] and [redacted]"
        );
    }

    #[test]
    fn urls_lose_credentials_and_query() {
        let url = url::Url::parse("https://u:p@h.invalid/npm/?token=t").expect("url");
        assert_eq!(redacted_url(&url), "https://h.invalid/npm/");
    }
}
