//! disttags-lambda: placeholder while the shim is being written (issue 5).
fn main() {}
