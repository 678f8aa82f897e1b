//! Drift test between infra/ templates and the code (issue 8, in progress).
