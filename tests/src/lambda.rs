//! The Lambda Runtime API emulator and Lambda transport (issue 5, in progress).
