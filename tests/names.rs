//! npm's name rules, table-driven: what is served, what is refused, and the key and upstream path derived.

use disttags_core::PackageName;

#[test]
fn valid_names_and_their_keys() {
    let longest = "a".repeat(214);
    let table: &[(&str, &str, &str)] = &[
        // (as it arrives in the path, store key, upstream segment)
        ("left-pad", "left-pad/index.json", "left-pad"),
        ("@scope%2fpkg", "@scope/pkg/index.json", "@scope%2fpkg"),
        ("@scope%2Fpkg", "@scope/pkg/index.json", "@scope%2fpkg"),
        ("@scope/pkg", "@scope/pkg/index.json", "@scope%2fpkg"),
        ("%40scope%2fpkg", "@scope/pkg/index.json", "@scope%2fpkg"),
        ("JSONStream", "JSONStream/index.json", "JSONStream"),
        (
            "legacy~name*(x)!'",
            "legacy~name*(x)!'/index.json",
            "legacy~name*(x)!'",
        ),
        ("http", "http/index.json", "http"),
        ("@s.x/p_q-r", "@s.x/p_q-r/index.json", "@s.x%2fp_q-r"),
        ("a.b", "a.b/index.json", "a.b"),
    ];
    for (raw, key, upstream) in table {
        let name = PackageName::from_path_segment(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(name.packument_key().as_ref(), *key, "{raw}");
        assert_eq!(name.upstream_segment(), *upstream, "{raw}");
    }
    let name = PackageName::from_path_segment(&longest).expect("214 characters is allowed");
    assert_eq!(name.as_str().len(), 214);
}

#[test]
fn invalid_names_are_refused_with_a_reason() {
    let too_long = "a".repeat(215);
    let scoped_too_long = format!("@s/{}", "a".repeat(212));
    for raw in crate::cases::INVALID_NAMES.iter().copied().chain([
        too_long.as_str(),
        scoped_too_long.as_str(),
        "",
        "a\\b",
        "a\u{0}b",
        "@s/.p",
        "@s/p/q",
    ]) {
        let err = PackageName::from_path_segment(raw).expect_err(raw);
        assert!(!err.0.is_empty(), "{raw}");
    }
}

#[test]
fn no_derived_key_leaves_the_package_prefix() {
    // Every byte pair, percent-encoded or not, in every position of a short name.
    let mut accepted = 0;
    for a in 0u8..=255 {
        for template in ["x{}y", "{}x", "@s%2f{}", "@{}%2fp"] {
            let raw = template.replace("{}", &format!("%{a:02x}"));
            if let Ok(name) = PackageName::from_path_segment(&raw) {
                accepted += 1;
                let key = name.packument_key().as_ref().to_owned();
                assert!(key.starts_with(name.as_str()), "{raw} -> {key}");
                assert!(key.ends_with("/index.json"));
                assert!(
                    !key.split('/')
                        .any(|s| s.is_empty() || s == "." || s == ".."),
                    "{key}"
                );
                assert_eq!(
                    key.matches('/').count(),
                    if name.is_scoped() { 2 } else { 1 },
                    "{key}"
                );
            }
        }
    }
    assert!(
        accepted > 100,
        "the table exercised accepted names too ({accepted})"
    );
}
