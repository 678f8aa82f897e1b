//! The caller, from the API Gateway authorizer: codebox's REST authorizer context, an HTTP API
//! Lambda authorizer's context, JWT claims, or the IAM principal.

use disttags_core::Identity;
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use lambda_http::request::RequestContext as Event;

/// The caller, when the event's authorizer names one.
pub(crate) fn identity(event: &Event) -> Option<Identity> {
    match event {
        Event::ApiGatewayV1(context) => from_authorizer(&context.authorizer),
        Event::ApiGatewayV2(context) => from_authorizer(context.authorizer.as_ref()?),
        _ => None,
    }
}

fn from_authorizer(authorizer: &ApiGatewayRequestAuthorizer) -> Option<Identity> {
    let field = |key: &str| {
        authorizer
            .fields
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(name) = field("username") {
        return Some(Identity {
            name,
            avatar: field("avatar"),
        });
    }
    if let Some(jwt) = &authorizer.jwt {
        let claims = &jwt.claims;
        let name = ["username", "cognito:username", "email", "sub"]
            .iter()
            .find_map(|k| claims.get(*k).filter(|v| !v.is_empty()))?;
        return Some(Identity {
            name: name.clone(),
            avatar: claims.get("picture").cloned(),
        });
    }
    // IAM authorization (HTTP API or a Function URL with AWS_IAM): the signing principal.
    let iam = authorizer.iam.as_ref()?;
    let name = [&iam.user_arn, &iam.caller_id, &iam.user_id]
        .into_iter()
        .find_map(|v| v.as_deref().filter(|v| !v.is_empty()))?;
    Some(Identity {
        name: name.to_owned(),
        avatar: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer(json: serde_json::Value) -> ApiGatewayRequestAuthorizer {
        serde_json::from_value(json).expect("authorizer")
    }

    #[test]
    fn identity_from_lambda_authorizer_fields_or_jwt_claims() {
        let lambda = authorizer(
            serde_json::json!({"lambda": {"username": "alice", "avatar": "https://a/p.png"}}),
        );
        let id = from_authorizer(&lambda).expect("identity");
        assert_eq!(
            (id.name.as_str(), id.avatar.as_deref()),
            ("alice", Some("https://a/p.png"))
        );
        let jwt = authorizer(
            serde_json::json!({"jwt": {"claims": {"sub": "123", "email": "bob@example.com"}}}),
        );
        assert_eq!(
            from_authorizer(&jwt).map(|i| i.name).as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(from_authorizer(&authorizer(serde_json::json!({}))), None);
        let iam = authorizer(serde_json::json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "111122223333",
            "callerId": "AIDAEXAMPLE", "userArn": "arn:aws:iam::111122223333:user/carol",
            "userId": "AIDAEXAMPLE"
        }}));
        assert_eq!(
            from_authorizer(&iam).map(|i| i.name).as_deref(),
            Some("arn:aws:iam::111122223333:user/carol")
        );
    }
}
