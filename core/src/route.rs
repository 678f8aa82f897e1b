//! Routing: which route a path below the base path is, and which methods it takes.

use http::Method;

use crate::error::Error;

/// The routes of the registry endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `GET /-/ping`: npm's health check.
    Ping,
    /// `GET /-/metrics`: Prometheus text, where the shim exports it.
    Metrics,
    /// `GET /-/package/{name}/dist-tags`, the name as it arrived (still percent-encoded).
    DistTags(&'a str),
    /// `PUT` / `DELETE /-/package/{name}/dist-tags/{tag}`, name and tag as they arrived.
    Tag {
        /// The package name, still percent-encoded.
        name: &'a str,
        /// The tag, still percent-encoded.
        tag: &'a str,
    },
}

/// The route `path` (relative to the base path) names, if `method` is one it takes. A path that
/// could be either dist-tags route (a package `x` with the tag `dist-tags`, or a scoped name ending
/// in `/dist-tags`) is the one the method belongs to.
pub(crate) fn route<'a>(path: &'a str, method: &Method) -> Result<Route<'a>, Error> {
    let get = |route| {
        if method == Method::GET {
            Ok(route)
        } else {
            Err(Error::MethodNotAllowed { allow: "GET" })
        }
    };
    if path == "/-/ping" {
        return get(Route::Ping);
    }
    if path == "/-/metrics" {
        return get(Route::Metrics);
    }
    let rest = path
        .strip_prefix("/-/package/")
        .ok_or(Error::RouteNotFound)?;
    let read = rest.strip_suffix("/dist-tags").map(Route::DistTags);
    let write = rest.rsplit_once('/').and_then(|(head, tag)| {
        let name = head.strip_suffix("/dist-tags")?;
        Some(Route::Tag { name, tag })
    });
    let writing = method == Method::PUT || method == Method::DELETE;
    match (read, write) {
        (_, Some(route)) if writing => Ok(route),
        (Some(route), _) => get(route),
        (None, Some(_)) => Err(Error::MethodNotAllowed {
            allow: "PUT, DELETE",
        }),
        (None, None) => Err(Error::RouteNotFound),
    }
}

impl Route<'_> {
    /// The route's name in log lines and metric labels.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Metrics => "metrics",
            Self::DistTags(_) => "dist-tags",
            Self::Tag { .. } => "tag",
        }
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
        assert_eq!(
            route("/-/package/@s%2fp/dist-tags/beta", &Method::PUT).ok(),
            Some(Route::Tag {
                name: "@s%2fp",
                tag: "beta"
            })
        );
        assert_eq!(
            route("/-/package/@s/p/dist-tags/beta", &Method::DELETE).ok(),
            Some(Route::Tag {
                name: "@s/p",
                tag: "beta"
            })
        );
        // The package `x`'s tag `dist-tags`, or the scoped-looking name `x/dist-tags`: by method.
        assert_eq!(
            route("/-/package/x/dist-tags/dist-tags", &Method::PUT).ok(),
            Some(Route::Tag {
                name: "x",
                tag: "dist-tags"
            })
        );
        assert_eq!(
            route("/-/package/x/dist-tags/dist-tags", &Method::GET).ok(),
            Some(Route::DistTags("x/dist-tags"))
        );
        assert!(matches!(
            route("/-/package/x/dist-tags/beta", &Method::GET),
            Err(Error::MethodNotAllowed {
                allow: "PUT, DELETE"
            })
        ));
    }
}
