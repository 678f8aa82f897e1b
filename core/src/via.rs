//! The `Via` header of upstream requests, by which a request that comes round again is told.
//!
//! Every upstream request carries the hops the request being answered came through, then this
//! server's own name. A request whose `Via` already names this server has been here before: asking
//! the upstream again would go round until the deadline.

use crate::digest::{hex, sha256};
use crate::redact::redacted_url;

/// The most hops before this server that are passed on; the oldest go first.
const MAX_HOPS: usize = 8;
/// The longest `Via` passed on, in bytes: a client's header must not make the upstream refuse ours.
const MAX_LEN: usize = 1024;
/// How many disttags servers a request may have passed before it counts as a loop, whatever their
/// names: a backstop for a loop through servers configured differently.
const MAX_DISTTAGS_HOPS: usize = 4;

/// The request has come round: the upstream leads back here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Looped;

/// A name for the servers of one deployment: every instance with the same store, upstream and base
/// path shares it, so a loop that comes back to another instance (another Lambda environment,
/// another Cloud Run instance) is told as surely as one that comes back to this process.
/// Credentials and the query are left out of the upstream URL before hashing.
pub fn deployment_name(store: &str, upstream: Option<&url::Url>, base_path: &str) -> String {
    let upstream = upstream.map_or_else(String::new, redacted_url);
    let digest = sha256(format!("{store}\n{upstream}\n{base_path}").as_bytes());
    format!("disttags-{}", hex(&digest[..8]))
}

/// The `Via` to send upstream while answering a request whose `Via` values are `incoming`: its hops
/// (the newest [`MAX_HOPS`], at most [`MAX_LEN`] bytes in all), then `1.1 {own}`. [`Looped`] when a
/// hop is received by `own`, or when [`MAX_DISTTAGS_HOPS`] disttags servers are among them.
pub(crate) fn extend<'a>(
    incoming: impl IntoIterator<Item = &'a [u8]>,
    own: &str,
) -> Result<String, Looped> {
    let mut hops = Vec::new();
    let mut disttags = 0;
    for value in incoming {
        for hop in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            // A hop is `protocol received-by [comment]`.
            let received_by = hop
                .split(u8::is_ascii_whitespace)
                .filter(|part| !part.is_empty())
                .nth(1);
            if received_by == Some(own.as_bytes()) {
                return Err(Looped);
            }
            if received_by.is_some_and(|r| r.starts_with(b"disttags-")) {
                disttags += 1;
            }
            // Only printable hops are passed on: anything else could not be sent as a header.
            if let Ok(text) = std::str::from_utf8(hop)
                && !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                hops.push(text);
            }
        }
    }
    if disttags >= MAX_DISTTAGS_HOPS {
        return Err(Looped);
    }
    let own = format!("1.1 {own}");
    let mut kept: Vec<&str> = Vec::new();
    let mut len = own.len();
    for hop in hops.iter().rev().take(MAX_HOPS) {
        if len + hop.len() + 2 > MAX_LEN {
            break;
        }
        len += hop.len() + 2;
        kept.push(hop);
    }
    kept.reverse();
    kept.push(&own);
    Ok(kept.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "disttags-00000000000000aa";

    fn via(values: &[&str]) -> Result<String, Looped> {
        extend(values.iter().map(|v| v.as_bytes()), OWN)
    }

    #[test]
    fn hops_are_passed_on_then_this_server() {
        assert_eq!(via(&[]), Ok(format!("1.1 {OWN}")));
        assert_eq!(
            via(&["1.1 edge (CloudFront), 1.0 proxy", "  ", "2 gw"]),
            Ok(format!("1.1 edge (CloudFront), 1.0 proxy, 2 gw, 1.1 {OWN}"))
        );
        // Another disttags, or a name that only starts like ours, is not a loop.
        assert!(via(&["1.1 disttags-00000000000000ab"]).is_ok());
        assert!(via(&[&format!("1.1 {OWN}x")]).is_ok());
    }

    #[test]
    fn this_server_among_the_hops_is_a_loop() {
        assert_eq!(via(&[&format!("1.1 {OWN}")]), Err(Looped));
        assert_eq!(
            via(&["1.1 a", &format!("1.1\t{OWN} (comment)")]),
            Err(Looped)
        );
        // A hop that is not text does not hide ours.
        let mut raw = b"1.1 caf\xc3\xa9, ".to_vec();
        raw.extend_from_slice(format!("1.1 {OWN}").as_bytes());
        assert_eq!(extend([raw.as_slice()], OWN), Err(Looped));
    }

    #[test]
    fn too_many_disttags_hops_are_a_loop_whatever_their_names() {
        let three = "1.1 disttags-1, 1.1 disttags-2, 1.1 disttags-3";
        assert!(via(&[three]).is_ok());
        assert_eq!(via(&[&format!("{three}, 1.1 disttags-4")]), Err(Looped));
    }

    #[test]
    fn a_long_client_via_is_cut_to_its_newest_hops() {
        let many: Vec<String> = (0..50).map(|i| format!("1.1 proxy-{i}")).collect();
        let sent = via(&[&many.join(", ")]).expect("not a loop");
        let hops: Vec<&str> = sent.split(", ").collect();
        assert_eq!(hops.len(), MAX_HOPS + 1);
        assert_eq!(hops[0], "1.1 proxy-42");
        assert_eq!(hops[MAX_HOPS], format!("1.1 {OWN}"));

        let huge = format!("1.1 {}", "x".repeat(4000));
        let sent = via(&["1.1 near", &huge]).expect("not a loop");
        assert!(sent.len() <= MAX_LEN, "{}", sent.len());
        assert_eq!(
            sent,
            format!("1.1 {OWN}"),
            "older hops are not kept past a dropped one"
        );
        // Non-text hops are dropped rather than sent.
        let sent = extend([b"1.1 caf\xc3\xa9\x01".as_slice()], OWN).expect("not a loop");
        assert_eq!(sent, format!("1.1 {OWN}"));
    }

    #[test]
    fn one_deployment_one_name() {
        let upstream = url::Url::parse("https://user:secret@registry.invalid/npm/?token=t").ok();
        let same_elsewhere = url::Url::parse("https://other:pw@registry.invalid/npm/").ok();
        let a = deployment_name("s3://bucket", upstream.as_ref(), "/");
        assert_eq!(
            a,
            deployment_name("s3://bucket", same_elsewhere.as_ref(), "/")
        );
        assert_ne!(a, deployment_name("s3://other", upstream.as_ref(), "/"));
        assert_ne!(a, deployment_name("s3://bucket", None, "/"));
        assert_ne!(
            a,
            deployment_name("s3://bucket", upstream.as_ref(), "/registry")
        );
        assert!(
            a.starts_with("disttags-") && a.len() == "disttags-".len() + 16,
            "{a}"
        );
    }
}
