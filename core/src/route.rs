//! Routing: which route a path below the base path is, and which methods it takes.

use http::Method;

use crate::error::Error;

/// The routes of the registry endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `GET /-/ping`: npm's health check.
    Ping,
    /// `GET /-/package/{name}/dist-tags`, the name as it arrived (still percent-encoded).
    DistTags(&'a str),
}

/// The route `path` (relative to the base path) names, if `method` is one it takes.
pub(crate) fn route<'a>(path: &'a str, method: &Method) -> Result<Route<'a>, Error> {
    let route = if path == "/-/ping" {
        Route::Ping
    } else {
        let raw_name = path
            .strip_prefix("/-/package/")
            .and_then(|p| p.strip_suffix("/dist-tags"))
            .ok_or(Error::RouteNotFound)?;
        Route::DistTags(raw_name)
    };
    if method == Method::GET {
        Ok(route)
    } else {
        Err(Error::MethodNotAllowed { allow: "GET" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        assert_eq!(route("/-/ping", &Method::GET).ok(), Some(Route::Ping));
        assert_eq!(
            route("/-/package/@s%2fp/dist-tags", &Method::GET).ok(),
            Some(Route::DistTags("@s%2fp"))
        );
        assert!(matches!(
            route("/-/package/x/dist-tags", &Method::PUT),
            Err(Error::MethodNotAllowed { allow: "GET" })
        ));
        assert!(matches!(
            route("/-/package/x", &Method::PUT),
            Err(Error::RouteNotFound)
        ));
    }
}
