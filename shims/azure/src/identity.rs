//! The caller, from App Service Authentication's principal headers.

use disttags_core::Identity;
use disttags_server::identity::{base64_json, header};
use http::HeaderMap;
use serde_json::Value;

/// Identity from App Service Authentication, which replaces these headers on every request it passes.
pub(crate) fn identity(headers: &HeaderMap) -> Option<Identity> {
    let principal = header(headers, "x-ms-client-principal").and_then(base64_json);
    let claim = |typ: &str| -> Option<String> {
        principal
            .as_ref()?
            .get("claims")?
            .as_array()?
            .iter()
            .find(|c| c.get("typ").and_then(Value::as_str) == Some(typ))?
            .get("val")?
            .as_str()
            .map(str::to_owned)
    };
    let name = header(headers, "x-ms-client-principal-name")
        .map(str::to_owned)
        .or_else(|| {
            let name_typ = principal.as_ref()?.get("name_typ")?.as_str()?.to_owned();
            claim(&name_typ)
        })
        .or_else(|| claim("name"))?;
    Some(Identity {
        name,
        avatar: claim("picture"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn identity_from_principal_headers() {
        let mut h = HeaderMap::new();
        // {"auth_typ":"aad","name_typ":"preferred_username","claims":[{"typ":"preferred_username","val":"ann@contoso.com"},{"typ":"picture","val":"https://p/a.png"}]}
        let principal = "eyJhdXRoX3R5cCI6ImFhZCIsIm5hbWVfdHlwIjoicHJlZmVycmVkX3VzZXJuYW1lIiwiY2xhaW1zIjpbeyJ0eXAiOiJwcmVmZXJyZWRfdXNlcm5hbWUiLCJ2YWwiOiJhbm5AY29udG9zby5jb20ifSx7InR5cCI6InBpY3R1cmUiLCJ2YWwiOiJodHRwczovL3AvYS5wbmcifV19";
        h.insert("x-ms-client-principal", HeaderValue::from_static(principal));
        let id = identity(&h).expect("identity");
        assert_eq!(id.name, "ann@contoso.com");
        assert_eq!(id.avatar.as_deref(), Some("https://p/a.png"));
        h.insert(
            "x-ms-client-principal-name",
            HeaderValue::from_static("ann"),
        );
        assert_eq!(identity(&h).map(|i| i.name).as_deref(), Some("ann"));
        assert_eq!(identity(&HeaderMap::new()), None);
    }
}
