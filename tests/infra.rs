//! The deployment templates cannot drift from the code: the binaries they build and run, the
//! variables they set (and the values they set them to), the routes they send to the function and the
//! ports they expect must be the ones the code has.

use std::path::Path;

use bytes::Bytes;
use disttags_core::sha256;
use disttags_core::vars;
use disttags_core::{Config, Defaults};
use disttags_tests::{packument, repo_root};
use http::{Request, StatusCode};
use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;

fn read(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A shim's `[package] name` and `[[bin]] name`.
fn shim_names(shim: &str) -> (String, String) {
    let manifest = read(&format!("shims/{shim}/Cargo.toml"));
    let name_in = |section: &str| {
        manifest
            .split(section)
            .nth(1)
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("name = ")
                        .map(|n| n.trim_matches('"').to_owned())
                })
            })
            .unwrap_or_else(|| panic!("shims/{shim}/Cargo.toml: no name in {section}"))
    };
    (name_in("[package]"), name_in("[[bin]]"))
}

/// Every file under `infra/` but build output, relative to the repository root.
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
    out.retain(|f| !f.starts_with("infra/aws/build/"));
    out.sort();
    out
}

/// Every environment-variable-like name in `text` that starts with `prefix` (at a word start).
fn names_with_prefix(text: &str, prefix: &str) -> Vec<String> {
    let in_name = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    text.match_indices(prefix)
        .filter(|(at, _)| !text[..*at].ends_with(in_name))
        .map(|(at, _)| text[at..].chars().take_while(|c| in_name(*c)).collect())
        .collect()
}

/// The `Default:` of a SAM parameter.
fn sam_default(sam: &str, parameter: &str) -> String {
    let block = sam
        .split(&format!("\n  {parameter}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("template.yaml: no parameter {parameter}"));
    block
        .lines()
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .map(|d| d.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("template.yaml: parameter {parameter} has no Default"))
}

/// The default of a Bicep parameter.
fn bicep_default(bicep: &str, parameter: &str) -> String {
    bicep
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("param {parameter} string = "))
                .map(|d| d.trim_matches('\'').to_owned())
        })
        .unwrap_or_else(|| panic!("main.bicep: no string parameter {parameter} with a default"))
}

/// The function's environment in the SAM template, parameters at their defaults; the store is the
/// text after `s3://`'s `!Sub`, as the template has it.
fn aws_settings() -> Vec<(String, String)> {
    let sam = read("infra/aws/template.yaml");
    let variables = sam
        .split("      Environment:\n        Variables:\n")
        .nth(1)
        .expect("template.yaml: the function's Environment.Variables");
    let mut out = Vec::new();
    for line in variables
        .lines()
        .take_while(|l| l.starts_with("          "))
    {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        if !key.starts_with("DISTTAGS_") {
            continue;
        }
        let value = value.trim();
        let value = if let Some(parameter) = value.strip_prefix("!Ref ") {
            sam_default(&sam, parameter)
        } else if value.starts_with("!Sub") {
            // A multi-line !Sub: its first list item is the format string.
            let format = variables
                .split(&format!("{key}: !Sub\n"))
                .nth(1)
                .and_then(|rest| rest.lines().next())
                .expect("the !Sub format string");
            format
                .trim()
                .trim_start_matches("- ")
                .trim_matches('"')
                .to_owned()
        } else {
            value.trim_matches('"').to_owned()
        };
        out.push((key.to_owned(), value));
    }
    out
}

/// The Function App's `DISTTAGS_*` settings in Bicep, parameters at their defaults.
fn azure_settings() -> Vec<(String, String)> {
    let bicep = read("infra/azure/main.bicep");
    let mut out = Vec::new();
    for line in bicep.lines() {
        let Some(rest) = line.trim().strip_prefix("{ name: 'DISTTAGS_") else {
            continue;
        };
        let (key, value) = rest
            .split_once("', value: ")
            .unwrap_or_else(|| panic!("main.bicep: cannot read the setting {line}"));
        let value = value.trim_end_matches('}').trim();
        let value = match value.strip_prefix('\'') {
            Some(literal) => {
                let mut literal = literal.trim_end_matches('\'').to_owned();
                while let Some(start) = literal.find("${") {
                    let end = literal[start..].find('}').expect("closing }") + start;
                    let parameter = literal[start + 2..end].to_owned();
                    literal.replace_range(start..=end, &bicep_default(&bicep, &parameter));
                }
                literal
            }
            None => bicep_default(&bicep, value),
        };
        out.push((format!("DISTTAGS_{key}"), value));
    }
    out
}

/// The container's `DISTTAGS_*` environment in the Cloud Run service.
fn cloud_run_settings() -> Vec<(String, String)> {
    let service = read("infra/gcp/service.yaml");
    let lines: Vec<&str> = service.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(key) = line.strip_prefix("- name: DISTTAGS_") {
            let value = lines[i + 1..]
                .iter()
                .find(|l| !l.starts_with('#'))
                .and_then(|l| l.strip_prefix("value: "))
                .unwrap_or_else(|| panic!("service.yaml: DISTTAGS_{key} has no literal value"));
            out.push((
                format!("DISTTAGS_{key}"),
                value.trim_matches('"').to_owned(),
            ));
        }
    }
    out
}

fn get<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// What the core, configured as a template configures it (on a memory store holding two packages),
/// answers to `GET path` with an optional bearer token.
fn answer(settings: &[(String, String)], path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut vars = settings.to_vec();
    for (key, value) in &mut vars {
        if key == "DISTTAGS_STORE" {
            *value = "memory://".into();
        }
    }
    let config = Config::from_vars(vars, Defaults::CLOUD)
        .unwrap_or_else(|e| panic!("the code refuses the template's settings {settings:?}: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = config.build_app().expect("app");
        for (name, tags) in [
            ("left-pad", r#"{"latest":"1.3.0"}"#),
            ("@scope/pkg", r#"{"latest":"2.0.0"}"#),
        ] {
            app.store()
                .put(
                    &StorePath::from(format!("{name}/index.json")),
                    PutPayload::from(packument(name, Some(tags))),
                )
                .await
                .expect("seed");
        }
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .handle(request.body(Bytes::new()).expect("request"))
            .await;
        (
            response.status(),
            String::from_utf8_lossy(response.body()).into_owned(),
        )
    })
}

#[test]
fn templates_name_the_binaries_the_workspace_builds() {
    let (lambda_package, lambda) = shim_names("lambda");
    let (_, azure) = shim_names("azure");
    let (cloudrun_package, cloudrun) = shim_names("cloudrun");

    // AWS: build.sh builds the package and copies its binary to build/bootstrap, which SAM runs.
    let build = read("infra/aws/build.sh");
    assert_eq!(
        lambda_package, lambda,
        "build.sh names the package and its binary with one variable"
    );
    assert!(
        build.contains(&format!("\npackage={lambda}\n")),
        "infra/aws/build.sh builds {lambda}"
    );
    assert!(
        build.contains("-p \"$package\"")
            && build.contains("target/release/$package")
            && build.contains("target/lambda/$package/bootstrap")
    );
    assert!(
        build.contains("\"$here/build/bootstrap\""),
        "build.sh writes build/bootstrap"
    );
    let sam = read("infra/aws/template.yaml");
    assert!(
        sam.contains("CodeUri: build/")
            && sam.contains("Handler: bootstrap")
            && sam.contains("Runtime: provided.al2023"),
        "SAM runs build/bootstrap on provided.al2023"
    );

    // Azure: the host starts the executable host.json names, which package.sh builds and packs
    // at the root of the zip, beside host.json and the function folder.
    let (azure_package, _) = shim_names("azure");
    let host = json("infra/azure/host.json");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        azure.as_str()
    );
    let package = read("infra/azure/package.sh");
    assert_eq!(
        azure_package, azure,
        "package.sh names both with one variable"
    );
    assert!(
        package.contains(&format!("\npackage={azure}\n"))
            && package.contains("-p \"$package\"")
            && package.contains("target/release/$package")
            && package.contains("(binary, package, 0o755)"),
        "infra/azure/package.sh builds {azure} and packs it executable"
    );
    assert!(
        package.contains("\"host.json\"") && package.contains("\"disttags/function.json\""),
        "the zip holds host.json and the function folder"
    );
    assert!(
        repo_root()
            .join("infra/azure/disttags/function.json")
            .is_file()
    );

    // Cloud Run: the image builds the package and runs its binary.
    let docker = read("infra/gcp/Dockerfile");
    assert!(docker.contains(&format!("-p {cloudrun_package}")));
    assert!(docker.contains(&format!("target/release/{cloudrun} /{cloudrun}")));
    assert!(docker.contains(&format!("ENTRYPOINT [\"/{cloudrun}\"]")));
}

#[test]
fn every_variable_the_templates_name_is_one_the_code_reads() {
    let mut seen = 0;
    for file in infra_files() {
        let text = read(&file);
        for name in names_with_prefix(&text, "DISTTAGS_") {
            assert!(
                vars::ALL.iter().any(|v| v.name == name),
                "{file} names {name}, which the code does not read"
            );
            seen += 1;
        }
        // Store credentials and settings: object_store's names, which the code passes on.
        for name in names_with_prefix(&text, "AZURE_") {
            assert!(
                name.to_ascii_lowercase().parse::<AzureConfigKey>().is_ok(),
                "{file} names {name}, which object_store has no Azure key for"
            );
        }
        // AWS_PROXY is API Gateway's integration type, not a variable.
        for name in names_with_prefix(&text, "AWS_")
            .into_iter()
            .filter(|n| n != "AWS_PROXY")
        {
            assert!(
                name.to_ascii_lowercase()
                    .parse::<AmazonS3ConfigKey>()
                    .is_ok(),
                "{file} names {name}, which object_store has no S3 key for"
            );
        }
        for name in names_with_prefix(&text, "GOOGLE_") {
            assert!(
                name.to_ascii_lowercase().parse::<GoogleConfigKey>().is_ok(),
                "{file} names {name}, which object_store has no GCS key for"
            );
        }
    }
    assert!(
        seen >= 12,
        "the templates configure the shims ({seen} mentions)"
    );
}

#[test]
fn every_template_points_its_shim_at_its_platforms_store() {
    for (platform, settings, scheme) in [
        ("aws", aws_settings(), "s3://"),
        ("azure", azure_settings(), "az://"),
        ("gcp", cloud_run_settings(), "gs://"),
    ] {
        let store = get(&settings, "DISTTAGS_STORE")
            .unwrap_or_else(|| panic!("{platform}: DISTTAGS_STORE is required on the cloud shims"));
        assert!(
            store.starts_with(scheme),
            "{platform}: DISTTAGS_STORE={store}"
        );
        for key in ["DISTTAGS_UPSTREAM", "DISTTAGS_LOG"] {
            assert!(
                get(&settings, key).is_some(),
                "{platform} sets {key} explicitly"
            );
        }
    }
    // Azure's store needs its account, which object_store reads from AZURE_STORAGE_ACCOUNT_NAME.
    assert!(
        read("infra/azure/main.bicep")
            .contains("{ name: 'AZURE_STORAGE_ACCOUNT_NAME', value: storage.name }")
    );
}

#[test]
fn aws_routes_reach_the_registry_paths() {
    let sam = read("infra/aws/template.yaml");
    let settings = aws_settings();
    // The function serves under BasePath, which both APIs pass on as part of the path.
    assert_eq!(
        get(&settings, "DISTTAGS_BASE_PATH"),
        Some(sam_default(&sam, "BasePath").as_str())
    );
    // HTTP API: a greedy GET route behind the authorizer, and an open ping under the same base path.
    assert!(sam.contains("RouteKey: GET /{proxy+}\n      AuthorizationType: JWT"));
    assert!(sam.contains(
        "RouteKey: !If [AtRoot, GET /-/ping, !Sub \"GET ${BasePath}/-/ping\"]\n      AuthorizationType: NONE"
    ));
    // REST API: a greedy GET resource at the root, behind the token authorizer.
    assert!(sam.contains("PathPart: \"{proxy+}\""));
    assert!(sam.contains("HttpMethod: GET\n      AuthorizationType: CUSTOM"));

    for base in ["", "/registry"] {
        let mut settings = settings.clone();
        for (key, value) in &mut settings {
            if key == "DISTTAGS_BASE_PATH" {
                *value = if base.is_empty() {
                    "/".into()
                } else {
                    base.into()
                };
            }
        }
        assert_eq!(
            answer(
                &settings,
                &format!("{base}/-/package/left-pad/dist-tags"),
                None
            ),
            (StatusCode::OK, r#"{"latest":"1.3.0"}"#.into())
        );
        assert_eq!(
            answer(
                &settings,
                &format!("{base}/-/package/@scope%2fpkg/dist-tags"),
                None
            ),
            (StatusCode::OK, r#"{"latest":"2.0.0"}"#.into())
        );
        assert_eq!(
            answer(&settings, &format!("{base}/-/ping"), None).0,
            StatusCode::OK
        );
    }
}

#[test]
fn azure_routes_reach_the_registry_paths() {
    let function = json("infra/azure/disttags/function.json");
    let trigger = &function["bindings"][0];
    assert_eq!(trigger["type"], "httpTrigger");
    assert_eq!(trigger["route"], "{*path}", "one catch-all trigger");
    assert_eq!(trigger["methods"], serde_json::json!(["get"]));
    assert_eq!(
        function["bindings"][1]["name"], "res",
        "the envelope answer goes in Outputs.res"
    );
    let host = json("infra/azure/host.json");
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    let prefix = host["extensions"]["http"]["routePrefix"]
        .as_str()
        .expect("host.json sets extensions.http.routePrefix explicitly");
    // Bicep takes the prefix of its health check and open path from host.json itself.
    let bicep = read("infra/azure/main.bicep");
    assert!(
        bicep
            .contains("var routePrefix = loadJsonContent('host.json').extensions.http.routePrefix")
    );
    assert!(
        bicep.contains("healthCheckPath: pingPath")
            && bicep.contains("excludedPaths: [ pingPath ]")
    );
    assert!(
        !bicep.contains(&format!("'/{prefix}/")),
        "no path in main.bicep spells the prefix out"
    );
    // The shim serves under the route prefix plus DISTTAGS_BASE_PATH; the core answers there.
    let mut settings = azure_settings();
    assert_eq!(get(&settings, "DISTTAGS_BASE_PATH"), None);
    settings.push(("DISTTAGS_BASE_PATH".into(), format!("/{prefix}")));
    assert_eq!(
        answer(
            &settings,
            &format!("/{prefix}/-/package/left-pad/dist-tags"),
            None
        ),
        (StatusCode::OK, r#"{"latest":"1.3.0"}"#.into())
    );
    assert_eq!(
        answer(&settings, &format!("/{prefix}/-/ping"), None).0,
        StatusCode::OK
    );
}

#[test]
fn cloud_run_routes_and_tokens_work_as_the_service_configures_them() {
    let service = read("infra/gcp/service.yaml");
    assert_eq!(
        service.matches("path: /-/ping").count(),
        2,
        "startup and liveness probes on /-/ping"
    );
    // The token file is the secret volume's item.
    let mut settings = cloud_run_settings();
    let file = get(&settings, "DISTTAGS_AUTH_TOKENS_FILE").expect("a token file");
    let (dir, item) = file.rsplit_once('/').expect("a path");
    assert!(
        service.contains(&format!("mountPath: {dir}\n")),
        "{dir} is mounted"
    );
    assert!(
        service.contains(&format!("path: {item}\n")),
        "the secret's item is {item}"
    );

    let tokens = tempfile::NamedTempFile::new().expect("temp file");
    let hash = sha256(b"s3cret")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("");
    std::fs::write(tokens.path(), format!("{hash} alice\n")).expect("write tokens");
    for (key, value) in &mut settings {
        if key == "DISTTAGS_AUTH_TOKENS_FILE" {
            *value = tokens.path().display().to_string();
        }
    }
    // The probes carry no token: /-/ping must stay open while everything else needs one.
    assert_eq!(answer(&settings, "/-/ping", None).0, StatusCode::OK);
    assert_eq!(
        answer(&settings, "/-/package/left-pad/dist-tags", None).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        answer(&settings, "/-/package/left-pad/dist-tags", Some("s3cret")),
        (StatusCode::OK, r#"{"latest":"1.3.0"}"#.into())
    );
}

#[test]
fn ports_match_the_shims() {
    let port = match vars::PORT.fallback {
        vars::Fallback::Value(port) => port,
        vars::Fallback::Described(_) => panic!("PORT has a default value"),
    };
    assert_eq!(
        vars::PORT.read_by,
        [vars::Program::CloudRun],
        "the Cloud Run shim listens on $PORT"
    );
    assert!(
        read("shims/cloudrun/src/lib.rs").contains("env.value(&PORT)"),
        "the shim reads PORT through the table, with its default"
    );
    let docker = read("infra/gcp/Dockerfile");
    assert!(
        docker.contains(&format!("\nEXPOSE {port}\n"))
            && docker.contains(&format!("\nENV PORT={port}\n")),
        "the image listens on {port}"
    );
    let service = read("infra/gcp/service.yaml");
    assert!(service.contains(&format!("containerPort: {port}\n")));
    assert_eq!(
        service
            .lines()
            .filter(|l| l.trim() == format!("port: {port}"))
            .count(),
        2,
        "both probes use {port}"
    );
    // Azure's port is chosen by the host and handed over in this variable.
    assert_eq!(
        vars::FUNCTIONS_CUSTOMHANDLER_PORT.read_by,
        [vars::Program::Azure]
    );
    assert!(read("shims/azure/src/lib.rs").contains("vars::FUNCTIONS_CUSTOMHANDLER_PORT"));
}

#[test]
fn the_deploy_guide_names_only_files_that_exist() {
    let readme = read("infra/README.md");
    let mut named = 0;
    for (at, _) in readme.match_indices("infra/") {
        // A path starts a word: `infra/…`, not part of a longer path or URL.
        if at > 0 && !readme[..at].ends_with([' ', '`', '(', '\n']) {
            continue;
        }
        let path: String = readme[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._/-".contains(*c))
            .collect();
        let path = path.trim_end_matches(['.', '/']);
        // What the build scripts write is not in the repository.
        if path.contains("/build/") || path == "infra" {
            continue;
        }
        assert!(
            repo_root().join(path).exists(),
            "infra/README.md names {path}, which does not exist"
        );
        named += 1;
    }
    // The table names files relative to infra/.
    for dir in ["aws/", "azure/", "gcp/"] {
        for (at, _) in readme.match_indices(&format!("`{dir}")) {
            let path: String = readme[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._/-".contains(*c))
                .collect();
            assert!(
                repo_root().join("infra").join(&path).exists(),
                "infra/README.md names infra/{path}, which does not exist"
            );
            named += 1;
        }
    }
    for file in ["scripts/lint-infra", "tests/infra.rs"] {
        assert!(readme.contains(file) && repo_root().join(file).is_file());
    }
    assert!(named >= 8, "the guide names the files it deploys ({named})");
}
