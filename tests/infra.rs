//! The deployment templates cannot drift from the code: binary names, environment variables, the
//! HTTP routes and the port the templates name must be the ones the code has.

use std::path::Path;

use disttags_core::config::VARIABLES;
use disttags_tests::repo_root;
use object_store::azure::AzureConfigKey;
use serde_json::Value;

fn read(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `[[bin]] name` of a shim's manifest.
fn binary_name(shim: &str) -> String {
    let manifest = read(&format!("shims/{shim}/Cargo.toml"));
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .unwrap_or_else(|| panic!("{shim}: no [[bin]]"));
    bin.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("name = ")
                .map(|n| n.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("{shim}: no bin name"))
}

fn infra_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(rel) = path.strip_prefix(repo_root()) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root().join("infra"), &mut out);
    out.retain(|f| !f.contains("/build/"));
    out.sort();
    out
}

/// Every environment-variable-like name in `text` that starts with `prefix`.
fn names_with_prefix(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn templates_name_the_binaries_the_workspace_builds() {
    let lambda = binary_name("lambda");
    let azure = binary_name("azure");
    let cloudrun = binary_name("cloudrun");
    let build = read("infra/aws/build.sh");
    assert!(
        build.contains(&format!("-p {lambda}")) && build.contains(&format!("release/{lambda}")),
        "infra/aws/build.sh builds {lambda}"
    );
    assert!(
        build.contains("build/bootstrap"),
        "SAM's provided.al2023 runs the file named bootstrap"
    );
    let sam = read("infra/aws/template.yaml");
    assert!(
        sam.contains("Handler: bootstrap")
            && sam.contains("Runtime: provided.al2023")
            && sam.contains("CodeUri: build/")
    );
    let host = json("infra/azure/host.json");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        azure.as_str()
    );
    let docker = read("infra/gcp/Dockerfile");
    assert!(
        docker.contains(&format!("-p {cloudrun}")),
        "the Dockerfile builds {cloudrun}"
    );
    assert!(
        docker.contains(&format!("ENTRYPOINT [\"/{cloudrun}\"]")),
        "and runs it"
    );
}

#[test]
fn every_variable_the_templates_set_is_one_the_code_reads() {
    let mut seen = 0;
    for file in infra_files() {
        let text = read(&file);
        for name in names_with_prefix(&text, "DISTTAGS_") {
            assert!(
                VARIABLES.contains(&name.as_str()),
                "{file} sets {name}, which the code does not read"
            );
            seen += 1;
        }
        for name in names_with_prefix(&text, "AZURE_STORAGE_") {
            assert!(
                name.to_ascii_lowercase().parse::<AzureConfigKey>().is_ok(),
                "{file} sets {name}, which object_store has no key for"
            );
        }
    }
    assert!(
        seen >= 8,
        "the templates configure the store, upstream and log sink ({seen} mentions)"
    );
    for (file, store) in [
        ("infra/aws/template.yaml", "DISTTAGS_STORE: !Sub \"s3://"),
        ("infra/azure/main.bicep", "value: 'az://"),
        ("infra/gcp/service.yaml", "value: gs://"),
    ] {
        assert!(
            read(file).contains(store),
            "{file} points DISTTAGS_STORE at its platform's store"
        );
    }
}

#[test]
fn routes_reach_the_registry_paths() {
    // AWS: a greedy GET route (scoped names arrive with %2f or a decoded /), and an open ping.
    let sam = read("infra/aws/template.yaml");
    assert!(
        sam.contains("Path: /{proxy+}")
            && sam.contains("Path: /-/ping")
            && sam.contains("Method: GET")
    );
    assert!(
        sam.contains("Authorizer: NONE"),
        "the health check stays open"
    );
    // Azure: a catch-all GET trigger under host.json's prefix, and paths in Bicep under that prefix.
    let function = json("infra/azure/disttags/function.json");
    let trigger = &function["bindings"][0];
    assert_eq!(trigger["type"], "httpTrigger");
    assert_eq!(trigger["route"], "{*path}");
    assert_eq!(trigger["methods"], serde_json::json!(["get"]));
    assert_eq!(
        function["bindings"][1]["name"], "res",
        "the envelope answer goes in Outputs.res"
    );
    let host = json("infra/azure/host.json");
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    let prefix = host["extensions"]["http"]["routePrefix"]
        .as_str()
        .expect("routePrefix");
    let bicep = read("infra/azure/main.bicep");
    assert!(
        bicep.contains(&format!("'/{prefix}/-/ping'")),
        "Bicep's health check and open path use /{prefix}/-/ping"
    );
    // Cloud Run: probes on the ping route.
    assert!(read("infra/gcp/service.yaml").contains("path: /-/ping"));
}

#[test]
fn cloud_run_port_matches_the_shim() {
    let shim = read("shims/cloudrun/src/main.rs");
    let port = shim
        .lines()
        .find_map(|l| l.trim().strip_prefix("const DEFAULT_PORT: u16 = "))
        .map(|p| p.trim_end_matches(';').to_owned())
        .expect("DEFAULT_PORT in the Cloud Run shim");
    assert!(
        shim.contains("std::env::var(\"PORT\")"),
        "the shim listens on $PORT"
    );
    let docker = read("infra/gcp/Dockerfile");
    assert!(
        docker.contains(&format!("EXPOSE {port}")) && docker.contains(&format!("ENV PORT={port}"))
    );
    assert!(read("infra/gcp/service.yaml").contains(&format!("containerPort: {port}")));
    // Azure's port is chosen by the host and read from this variable.
    assert!(read("shims/azure/src/main.rs").contains("FUNCTIONS_CUSTOMHANDLER_PORT"));
}
