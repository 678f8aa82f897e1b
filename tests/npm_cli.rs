//! The real npm CLI as the client: `npm dist-tag ls` against a running `disttags serve`.

use std::process::{Command, Output};

use disttags_tests::target::Target;
use disttags_tests::{Behaviour, TestUpstream, packument, shared_packument, token_hash};

fn npm(registry: &str, home: &std::path::Path, args: &[&str]) -> Output {
    let userconfig = home.join(".npmrc");
    if !userconfig.exists() {
        std::fs::write(&userconfig, "").expect("empty npmrc");
    }
    Command::new("npm")
        .args(args)
        .arg("--registry")
        .arg(registry)
        // Nothing from the machine's own npm setup: an empty user config, a throw-away cache.
        .env("npm_config_userconfig", &userconfig)
        .env("npm_config_cache", home.join("cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_fetch_retries", "0")
        .env_remove("npm_config_registry")
        .env_remove("NPM_CONFIG_REGISTRY")
        .output()
        .expect("npm is installed (scripts/test checks for it)")
}

fn lines(output: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_dist_tag_ls_through_disttags_serve() {
    let upstream = TestUpstream::start(
        &[(
            "upstream-only",
            Behaviour::Tags(r#"{"latest":"2.0.0","beta":"3.0.0-beta.1"}"#),
        )],
        true,
    )
    .await;
    let left_pad = shared_packument("left-pad.front.json.gz");
    let expected: serde_json::Value = serde_json::from_slice(&left_pad).expect("json");
    let store = vec![
        ("left-pad/index.json", left_pad.clone()),
        (
            "@scope/pkg/index.json",
            packument(
                "@scope/pkg",
                Some(r#"{"latest":"1.0.0","next":"2.0.0-rc.1"}"#),
            ),
        ),
    ];
    let target = Target::local(&store, &upstream, &[]).await;
    let registry = format!("{}/", target.url().expect("local serves HTTP"));
    let home = tempfile::tempdir().expect("tempdir");

    let out = npm(&registry, home.path(), &["dist-tag", "ls", "left-pad"]);
    assert!(out.status.success(), "{out:?}");
    let want: Vec<String> = expected["dist-tags"]
        .as_object()
        .expect("tags")
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(lines(&out), want);

    let out = npm(&registry, home.path(), &["dist-tag", "ls", "@scope/pkg"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out), ["latest: 1.0.0", "next: 2.0.0-rc.1"]);

    let out = npm(&registry, home.path(), &["dist-tag", "ls", "upstream-only"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out), ["beta: 3.0.0-beta.1", "latest: 2.0.0"]);

    let out = npm(
        &registry,
        home.path(),
        &["dist-tag", "ls", "no-such-package"],
    );
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("E404") && stderr.contains("no-such-package"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // Repeat lookups revalidate with If-None-Match and still print the tags.
    let out = npm(&registry, home.path(), &["dist-tag", "ls", "@scope/pkg"]);
    assert_eq!(lines(&out), ["latest: 1.0.0", "next: 2.0.0-rc.1"]);
}

/// A home whose `.npmrc` gives `registry` this token, as `npm login` or `npm config set` would.
fn home_with_token(registry: &str, token: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let nerf = registry.trim_start_matches("http:");
    std::fs::write(
        home.path().join(".npmrc"),
        format!("{nerf}:_authToken={token}\n"),
    )
    .expect("npmrc");
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_dist_tag_add_rm_ls_through_disttags_serve() {
    const WRITER: &str = "npm-cli-writer-token";
    const READER: &str = "npm-cli-reader-token";
    let upstream = TestUpstream::start(&[], true).await;
    let left_pad = shared_packument("left-pad.front.json.gz");
    let doc: serde_json::Value = serde_json::from_slice(&left_pad).expect("json");
    let original: Vec<String> = doc["dist-tags"]
        .as_object()
        .expect("tags")
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
        .collect();
    let version = doc["versions"]
        .as_object()
        .and_then(|v| v.keys().next())
        .expect("a version")
        .clone();
    let store = vec![
        ("left-pad/index.json", left_pad.clone()),
        (
            "@scope/pkg/index.json",
            packument("@scope/pkg", Some(r#"{"latest":"1.0.0"}"#)),
        ),
    ];
    let writer = format!("{} npm-writer", token_hash(WRITER));
    let reader = token_hash(READER);
    let target = Target::local(
        &store,
        &upstream,
        &[
            ("DISTTAGS_WRITES", "on"),
            ("DISTTAGS_WRITE_TOKENS", writer.as_str()),
            ("DISTTAGS_AUTH_TOKENS", reader.as_str()),
        ],
    )
    .await;
    let registry = format!("{}/", target.url().expect("local serves HTTP"));
    let writes = home_with_token(&registry, WRITER);
    let reads = home_with_token(&registry, READER);

    let spec = format!("left-pad@{version}");
    let out = npm(
        &registry,
        writes.path(),
        &["dist-tag", "add", &spec, "beta"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out), [format!("+beta: left-pad@{version}")]);
    let out = npm(&registry, reads.path(), &["dist-tag", "ls", "left-pad"]);
    assert!(out.status.success(), "{out:?}");
    let mut with_beta = original.clone();
    with_beta.push(format!("beta: {version}"));
    with_beta.sort();
    assert_eq!(
        lines(&out),
        with_beta,
        "the read token sees the write at once"
    );

    let out = npm(
        &registry,
        writes.path(),
        &["dist-tag", "rm", "left-pad", "beta"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out), [format!("-beta: left-pad@{version}")]);
    let out = npm(&registry, writes.path(), &["dist-tag", "ls", "left-pad"]);
    let mut sorted = original.clone();
    sorted.sort();
    assert_eq!(lines(&out), sorted);

    // Scoped, as npm encodes it (`@scope%2fpkg`).
    let out = npm(
        &registry,
        writes.path(),
        &["dist-tag", "add", "@scope/pkg@1.0.0", "next"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = npm(&registry, writes.path(), &["dist-tag", "ls", "@scope/pkg"]);
    assert_eq!(lines(&out), ["latest: 1.0.0", "next: 1.0.0"]);
    let out = npm(
        &registry,
        writes.path(),
        &["dist-tag", "rm", "@scope/pkg", "next"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = npm(&registry, writes.path(), &["dist-tag", "ls", "@scope/pkg"]);
    assert_eq!(lines(&out), ["latest: 1.0.0"]);

    // A read-only token: npm fails and prints the registry's reason.
    let out = npm(
        &registry,
        reads.path(),
        &["dist-tag", "add", "@scope/pkg@1.0.0", "next"],
    );
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("may read but not change tags"),
        "{stderr}"
    );
    let out = npm(&registry, writes.path(), &["dist-tag", "ls", "@scope/pkg"]);
    assert_eq!(lines(&out), ["latest: 1.0.0"], "nothing was written");

    // The writes are on the record, under the token's name.
    let events = target.events(4).await;
    let named: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["namespace"] == "info:dist-tags:put" || e["namespace"] == "info:dist-tags:delete"
        })
        .collect();
    assert_eq!(named.len(), 4, "{events:?}");
    assert!(
        named.iter().all(|e| e["user"]["name"] == "npm-writer"),
        "{named:?}"
    );
}
