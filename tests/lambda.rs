//! Lambda-specific tests (issue 5, in progress).
