//! The errors: the one error type of a request, and the one place where an error becomes a status
//! and a body; and the configuration mistake that stops a program at start.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::answer::json_response;
use crate::edit::Unwritable;
use crate::extract::ExtractError;
use crate::names::InvalidName;
use crate::tags::InvalidTag;

/// A configuration mistake, worded as the one line that tells the operator what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A mistake described by `message`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Everything that can end a request without dist-tags, named from the client's point of view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The package name breaks npm's rules; nothing was read.
    #[error("{0}")]
    InvalidName(#[from] InvalidName),
    /// No route has this path.
    #[error("not found")]
    RouteNotFound,
    /// The server requires a bearer token and none valid was presented.
    #[error("authentication required: send a registry token (npm: _authToken in .npmrc)")]
    Unauthorized,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
    /// Neither the store nor the upstream has the package.
    #[error("{0}")]
    PackageNotFound(String),
    /// Reading the store failed for a reason other than a missing object.
    #[error("reading {key} from the store failed: {source}")]
    Store {
        /// The object that was being read.
        key: String,
        /// What object_store reported.
        source: object_store::Error,
    },
    /// The store did not answer one lookup's reads within the store timeout.
    #[error("reading {key} from the store failed: no answer within {after:?}")]
    StoreTimeout {
        /// The object that was being read.
        key: String,
        /// The bound that passed.
        after: Duration,
    },
    /// The packument was replaced between the reads of one lookup, each time it was read.
    #[error("reading {key} from the store failed: the packument kept changing while it was read")]
    StoreUnstable {
        /// The object that was being read.
        key: String,
    },
    /// The configured bucket, container or directory does not exist: a broken deployment, not a
    /// missing package.
    #[error("the store's bucket, container or directory does not exist ({0})")]
    StoreMissing(String),
    /// The stored packument's top-level `dist-tags` cannot be read.
    #[error("stored packument {key} is unreadable: {source}")]
    Corrupt {
        /// The object that was read.
        key: String,
        /// What is wrong with it.
        source: ExtractError,
    },
    /// The upstream registry could not be reached or answered with a server error.
    #[error("upstream registry unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream registry did not answer in time.
    #[error("upstream registry timed out: {0}")]
    UpstreamTimeout(String),
    /// The upstream registry answered something that is not dist-tags.
    #[error("upstream registry sent an invalid answer: {0}")]
    UpstreamInvalid(String),
    /// The request came through this server already (its `Via` names this server): asking the
    /// upstream again would go round for ever.
    #[error(
        "the request came round to this server again: DISTTAGS_UPSTREAM points at this server, \
         or at a registry whose upstream leads here"
    )]
    Loop,
    /// The upstream answered 508 Loop Detected: a registry behind it found the request had come round.
    #[error(
        "the upstream registry answered 508 Loop Detected: a registry behind it leads back to it \
         or to this server"
    )]
    UpstreamLoop,
    /// The request body is larger than any route takes, or could not be read.
    #[error("request body too large or unreadable")]
    BodyTooLarge,
    /// The request body did not arrive within the body read timeout.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// One lookup's error, shared by every lookup that waited for it (single flight).
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// An Azure Functions invocation envelope that cannot be read.
    #[error("invalid invocation envelope: {0}")]
    InvalidEnvelope(String),
    /// A tag write on a registry whose writes are off.
    #[error(
        "tag writes are not enabled on this registry: the operator sets DISTTAGS_WRITES=on (writes \
         then need a write token, or the platform's authorizer) or DISTTAGS_WRITES=anyone"
    )]
    WritesDisabled,
    /// A token that may read but not write.
    #[error(
        "this token may read but not change tags: writes need a token listed in DISTTAGS_WRITE_TOKENS"
    )]
    WriteForbidden,
    /// The tag name or the `PUT` body is not one a write takes; nothing was read.
    #[error("{0}")]
    InvalidTag(#[from] InvalidTag),
    /// The tags would grow past what a read takes ([`crate::extract::MAX_DIST_TAGS_LEN`]).
    #[error("the package's dist-tags would be larger than 1 MiB: remove tags before adding more")]
    TooManyTags,
    /// `DELETE` of `latest`, which every package must keep.
    #[error("the latest tag cannot be removed: point it at another version instead")]
    LatestRequired,
    /// A write of a package this registry's store does not hold.
    #[error("package {0} is not in this registry's store: it cannot be tagged here")]
    NotStored(String),
    /// `PUT` of a version the packument does not have.
    #[error("version {version} is not a version of {name}")]
    VersionNotFound {
        /// The package.
        name: String,
        /// The version the body named.
        version: String,
    },
    /// `DELETE` of a tag the package does not have.
    #[error("package {name} has no tag {tag}")]
    TagNotFound {
        /// The package.
        name: String,
        /// The tag.
        tag: String,
    },
    /// The packument changed under the write more often than its budget allowed; nothing was lost.
    #[error("{key} changed under the write on each of {attempts} attempts; nothing was written")]
    WriteConflict {
        /// The object being written.
        key: String,
        /// How many times it was read and written back.
        attempts: u32,
    },
    /// The stored packument cannot be changed (not JSON, a broken `dist-tags`).
    #[error("stored packument {key} cannot be changed: {source}")]
    Unwritable {
        /// The object that was read.
        key: String,
        /// What is wrong with it.
        source: Unwritable,
    },
    /// Writing the packument back to the store failed.
    #[error("writing {key} to the store failed: {source}")]
    StoreWrite {
        /// The object being written.
        key: String,
        /// What object_store reported.
        source: object_store::Error,
    },
    /// A file of the file store could not be read, locked or replaced.
    #[error("writing {path} failed: {source}")]
    FileWrite {
        /// The file.
        path: String,
        /// What the operating system reported.
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidName(_)
            | Self::InvalidEnvelope(_)
            | Self::InvalidTag(_)
            | Self::LatestRequired
            | Self::VersionNotFound { .. } => StatusCode::BAD_REQUEST,
            Self::TooManyTags => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RouteNotFound
            | Self::PackageNotFound(_)
            | Self::NotStored(_)
            | Self::TagNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::WritesDisabled | Self::WriteForbidden => StatusCode::FORBIDDEN,
            Self::WriteConflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Store { .. }
            | Self::StoreTimeout { .. }
            | Self::StoreUnstable { .. }
            | Self::StoreMissing(_)
            | Self::Corrupt { .. }
            | Self::Unwritable { .. }
            | Self::StoreWrite { .. }
            | Self::FileWrite { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamUnavailable(_) | Self::UpstreamInvalid(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Loop | Self::UpstreamLoop => StatusCode::LOOP_DETECTED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Shared(inner) => inner.status(),
        }
    }

    /// The message a client sees: it names what failed, never a store detail, URL or credential.
    pub fn client_message(&self) -> String {
        match self {
            Self::Store { .. } | Self::StoreTimeout { .. } | Self::StoreUnstable { .. } => {
                "could not read the package from the registry's store".into()
            }
            Self::StoreWrite { .. } | Self::FileWrite { .. } => "could not write the package to the registry's store".into(),
            Self::Unwritable { source, .. } => {
                format!("the stored package document cannot be changed: {source}")
            }
            Self::WriteConflict { .. } => {
                "the package kept changing while the tag was written; nothing was written: try again"
                    .into()
            }
            Self::StoreMissing(_) => "the registry's store is misconfigured".into(),
            Self::Corrupt { source, .. } => {
                format!("the stored package document is unreadable: {source}")
            }
            Self::UpstreamUnavailable(_) => "the upstream registry is unavailable".into(),
            Self::UpstreamTimeout(_) => "the upstream registry did not answer in time".into(),
            Self::UpstreamInvalid(_) => "the upstream registry sent an invalid answer".into(),
            Self::Loop => "the upstream registry leads back to this registry".into(),
            Self::UpstreamLoop => "the upstream registry reports a loop".into(),
            Self::Shared(inner) => inner.client_message(),
            other => other.to_string(),
        }
    }

    /// The response for this error: `{"ok":false,"error":…}` with its status, and `Allow` for a 405.
    pub fn into_response(self) -> Response<Bytes> {
        let body = ErrorBody {
            ok: false,
            error: &self.client_message(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"ok":false}"#.to_vec());
        let mut response = json_response(self.status(), Bytes::from(body));
        match self {
            Self::MethodNotAllowed { allow } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"disttags\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// An error's message followed by each of its causes not already in it: `a: b: c`. HTTP clients
/// say only "error sending request" at the top; what went wrong is in the causes.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}

/// npm's error shape, `ok` first as the registry writes it.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    ok: bool,
    error: &'a str,
}
