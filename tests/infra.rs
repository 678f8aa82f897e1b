//! The deployment templates cannot drift from the code: the binaries they build and run, the
//! variables they set (and the values they set them to), the routes they send to the function and the
//! ports they expect must be the ones the code has.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use disttags_core::vars;
use disttags_core::{Config, Defaults};
use disttags_tests::{packument, repo_root, token_hash};
use http::{Method, Request, StatusCode};
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
    cloud_run_settings_in(&read("infra/gcp/service.yaml"))
}

/// The command `service.yaml` and the deploy guide give for rendering the service with writes on.
const CLOUD_RUN_WRITES_SED: &str = r"sed -e '/ #-writes$/d' -e 's/^\( *\)#+writes /\1/'";

/// `service.yaml` as [`CLOUD_RUN_WRITES_SED`] renders it: lines ending in ` #-writes` dropped, the
/// `#+writes ` marker taken off the lines it starts.
fn cloud_run_with_writes(service: &str) -> String {
    let mut out = String::new();
    for line in service.lines() {
        if line.ends_with(" #-writes") {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        match line[indent..].strip_prefix("#+writes ") {
            Some(rest) => out.push_str(&format!("{}{rest}", &line[..indent])),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The container's `DISTTAGS_*` environment in a rendering of the Cloud Run service.
fn cloud_run_settings_in(service: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = service.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(key) = line.strip_prefix("- name: DISTTAGS_") {
            let value = lines[i + 1..]
                .iter()
                .find(|l| !l.starts_with('#'))
                .and_then(|l| l.strip_prefix("value: "))
                .map(|v| v.split(" #").next().unwrap_or(v).trim())
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
    let mut answers = exchange(
        settings,
        Defaults::CLOUD,
        &[Call {
            method: Method::GET,
            path: path.to_owned(),
            body: None,
            token,
        }],
    );
    answers.remove(0)
}

/// One request to the core.
struct Call<'a> {
    method: Method,
    path: String,
    body: Option<&'a str>,
    token: Option<&'a str>,
}

/// The packages the core's memory store holds in [`exchange`]: two the read tests ask for, and two
/// whose `latest` is a version they have, for the write tests to tag.
const SEED: [(&str, &str); 4] = [
    ("left-pad", r#"{"latest":"1.3.0"}"#),
    ("@scope/pkg", r#"{"latest":"2.0.0"}"#),
    ("tagged", r#"{"latest":"1.0.0"}"#),
    ("@scope/tagged", r#"{"latest":"1.0.0"}"#),
];

/// What the core, configured as a template configures it (as the shim does, with `defaults`) on a
/// memory store holding [`SEED`], answers to `calls`, made one after the other to one app.
fn exchange(
    settings: &[(String, String)],
    defaults: Defaults,
    calls: &[Call<'_>],
) -> Vec<(StatusCode, String)> {
    let mut vars = settings.to_vec();
    for (key, value) in &mut vars {
        if key == "DISTTAGS_STORE" {
            *value = "memory://".into();
        }
    }
    let config = Config::from_vars(vars, defaults)
        .unwrap_or_else(|e| panic!("the code refuses the template's settings {settings:?}: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = config.build_app().expect("app");
        for (name, tags) in SEED {
            app.store()
                .put(
                    &StorePath::from(format!("{name}/index.json")),
                    PutPayload::from(packument(name, Some(tags))),
                )
                .await
                .expect("seed");
        }
        let mut answers = Vec::new();
        for call in calls {
            let mut request = Request::builder()
                .method(call.method.clone())
                .uri(call.path.as_str());
            if let Some(token) = call.token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            if call.body.is_some() {
                request = request.header("content-type", "application/json");
            }
            let body = call
                .body
                .map(|b| Bytes::from(b.to_owned()))
                .unwrap_or_default();
            let response = app.handle(request.body(body).expect("request")).await;
            answers.push((
                response.status(),
                String::from_utf8_lossy(response.body()).into_owned(),
            ));
        }
        answers
    })
}

/// `settings` with `key` set to `value`.
fn with(settings: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        settings.iter().filter(|(k, _)| k != key).cloned().collect();
    out.push((key.to_owned(), value.to_owned()));
    out
}

/// What `npm dist-tag add tagged@1.0.0 beta` and then `npm dist-tag rm tagged beta` get, for the
/// package `tagged` and the scoped `@scope/tagged`, under `base`: each write's status, and the
/// `beta` tag a read sees after it.
fn tag_round_trip(
    settings: &[(String, String)],
    defaults: Defaults,
    base: &str,
    token: Option<&str>,
) -> Vec<(StatusCode, Option<String>)> {
    let mut calls = Vec::new();
    for name in ["tagged", "@scope%2ftagged"] {
        let tags = format!("{base}/-/package/{name}/dist-tags");
        for (method, body) in [(Method::PUT, Some("\"1.0.0\"")), (Method::DELETE, None)] {
            calls.push(Call {
                method,
                path: format!("{tags}/beta"),
                body,
                token,
            });
            calls.push(Call {
                method: Method::GET,
                path: tags.clone(),
                body: None,
                token,
            });
        }
    }
    // The events the writes log are not what is tested here.
    let settings = with(settings, "DISTTAGS_LOG", "none");
    let answers = exchange(&settings, defaults, &calls);
    answers
        .chunks(2)
        .map(|pair| {
            let (write, _) = &pair[0];
            let (read, tags) = &pair[1];
            assert_eq!(*read, StatusCode::OK, "the read after a write: {tags}");
            let tags: Value = serde_json::from_str(tags).expect("dist-tags JSON");
            (*write, tags["beta"].as_str().map(str::to_owned))
        })
        .collect()
}

/// [`tag_round_trip`] as it goes when the writes succeed: set, then gone, for both packages.
fn tags_written() -> Vec<(StatusCode, Option<String>)> {
    let mut out = Vec::new();
    for _ in 0..2 {
        out.push((StatusCode::OK, Some("1.0.0".to_owned())));
        out.push((StatusCode::OK, None));
    }
    out
}

/// The statuses of [`tag_round_trip`]'s writes, success folded into 200.
fn write_statuses(trip: &[(StatusCode, Option<String>)]) -> Vec<(StatusCode, Option<String>)> {
    trip.iter()
        .map(|(status, beta)| {
            let status = if status.is_success() {
                StatusCode::OK
            } else {
                *status
            };
            (status, beta.clone())
        })
        .collect()
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
        // GOOGLE_CLOUD_PROJECT is the code's own (the project of log lines' trace links).
        for name in names_with_prefix(&text, "GOOGLE_")
            .into_iter()
            .filter(|n| !disttags_core::vars::ALL.iter().any(|v| v.name == n))
        {
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

/// API Gateway's integration timeout where the template sets no `TimeoutInMillis`: 29 s on a REST
/// API (30 s on an HTTP API), the shorter of the two.
const API_GATEWAY_LIMIT: Duration = Duration::from_secs(29);
/// How long the Azure front end (its load balancer) waits for an HTTP-triggered function to answer,
/// whatever host.json's `functionTimeout` allows.
const AZURE_FRONT_END_LIMIT: Duration = Duration::from_secs(230);
/// The least time a template leaves between the end of a request's budget and the platform's cut,
/// for disttags' own error answer and error event.
const LEAST_MARGIN: Duration = Duration::from_secs(1);
/// The timeouts of one call, which run inside the request's budget.
const PER_CALL_TIMEOUTS: [&vars::Var; 4] = [
    &vars::STORE_CONNECT_TIMEOUT_MS,
    &vars::STORE_TIMEOUT_MS,
    &vars::UPSTREAM_CONNECT_TIMEOUT_MS,
    &vars::UPSTREAM_TIMEOUT_MS,
];

/// When API Gateway or Lambda cuts a request off, as the SAM template sets them: the function's
/// `Timeout`, and every integration's `TimeoutInMillis` (else [`API_GATEWAY_LIMIT`]).
fn aws_limit() -> Duration {
    let sam = read("infra/aws/template.yaml");
    let resources = sam_resources(&sam);
    let timeout = sam_property(sam_resource(&resources, "DistTagsFunction"), "Timeout")
        .expect("template.yaml: DistTagsFunction sets Timeout");
    let timeout = match timeout.strip_prefix("!Ref ") {
        Some(parameter) => sam_default(&sam, parameter),
        None => timeout.trim_matches('"').to_owned(),
    };
    let seconds: u64 = timeout
        .parse()
        .unwrap_or_else(|e| panic!("template.yaml: Timeout {timeout:?}: {e}"));
    let mut limit = API_GATEWAY_LIMIT.min(Duration::from_secs(seconds));
    for (id, block) in &resources {
        if let Some(millis) = sam_property(block, "TimeoutInMillis") {
            let millis: u64 = millis
                .parse()
                .unwrap_or_else(|e| panic!("template.yaml: {id}: TimeoutInMillis {millis:?}: {e}"));
            limit = limit.min(Duration::from_millis(millis));
        }
    }
    limit
}

/// When the Functions host or the Azure front end cuts a request off: host.json's
/// `functionTimeout` (`hh:mm:ss`, required) or [`AZURE_FRONT_END_LIMIT`], whichever is shorter.
fn azure_limit() -> Duration {
    let host = json("infra/azure/host.json");
    let timeout = host["functionTimeout"]
        .as_str()
        .expect("host.json sets functionTimeout explicitly");
    let parts: Vec<u64> = timeout
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()
        .filter(|p: &Vec<u64>| p.len() == 3)
        .unwrap_or_else(|| panic!("host.json: functionTimeout {timeout:?} is not hh:mm:ss"));
    let seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
    AZURE_FRONT_END_LIMIT.min(Duration::from_secs(seconds))
}

/// When Cloud Run cuts a request off: the revision's `timeoutSeconds`.
fn cloud_run_limit() -> Duration {
    let service = read("infra/gcp/service.yaml");
    let set: Vec<&str> = service
        .lines()
        .filter_map(|l| l.trim().strip_prefix("timeoutSeconds: "))
        .collect();
    let [seconds] = set[..] else {
        panic!("service.yaml sets timeoutSeconds once: {set:?}");
    };
    Duration::from_secs(
        seconds
            .trim_matches('"')
            .parse()
            .unwrap_or_else(|e| panic!("service.yaml: timeoutSeconds {seconds:?}: {e}")),
    )
}

/// What is wrong with `settings`' request budget on a platform that cuts requests off at `limit`:
/// unset, unreadable, less than [`LEAST_MARGIN`] under the limit, or below a per-call timeout the
/// settings set.
fn budget_findings(settings: &[(String, String)], limit: Duration) -> Vec<String> {
    let env = vars::Env::new(settings.to_vec());
    let name = vars::REQUEST_TIMEOUT_MS.name;
    if get(settings, name).is_none() {
        return vec![format!("{name} is not set")];
    }
    let budget = match env.millis(&vars::REQUEST_TIMEOUT_MS) {
        Ok(budget) => budget,
        Err(e) => return vec![e.to_string()],
    };
    let mut findings = Vec::new();
    if budget + LEAST_MARGIN > limit {
        findings.push(format!(
            "{name} is {budget:?}: the platform cuts requests off at {limit:?}, and the budget must end at least {LEAST_MARGIN:?} before"
        ));
    }
    for var in PER_CALL_TIMEOUTS {
        if get(settings, var.name).is_none() {
            continue;
        }
        match env.millis(var) {
            Ok(timeout) if timeout > budget => findings.push(format!(
                "{} is {timeout:?}, more than the request's budget {budget:?}",
                var.name
            )),
            Ok(_) => {}
            Err(e) => findings.push(e.to_string()),
        }
    }
    findings
}

#[test]
fn every_template_answers_within_its_platforms_time_limit() {
    let writes = cloud_run_settings_in(&cloud_run_with_writes(&read("infra/gcp/service.yaml")));
    for (platform, settings, limit) in [
        ("aws", aws_settings(), aws_limit()),
        ("azure", azure_settings(), azure_limit()),
        ("gcp", cloud_run_settings(), cloud_run_limit()),
        ("gcp with writes", writes, cloud_run_limit()),
    ] {
        assert_eq!(
            budget_findings(&settings, limit),
            Vec::<String>::new(),
            "{platform}"
        );
        // The check itself catches a budget raised to (or past) the limit, one left unset, and a
        // per-call timeout set above the budget.
        let budget = vars::REQUEST_TIMEOUT_MS.name;
        let caught = |settings: &[(String, String)], about: &str| {
            budget_findings(settings, limit)
                .iter()
                .any(|f| f.starts_with(about))
        };
        for raised in [limit - LEAST_MARGIN / 2, limit, limit * 2] {
            let raised = raised.as_millis().to_string();
            assert!(
                caught(&with(&settings, budget, &raised), budget),
                "{platform}: {budget}={raised}"
            );
        }
        let unset: Vec<(String, String)> = settings
            .iter()
            .filter(|(k, _)| k != budget)
            .cloned()
            .collect();
        assert!(caught(&unset, budget), "{platform}: {budget} unset");
        for var in PER_CALL_TIMEOUTS {
            let over = with(&with(&settings, budget, "2000"), var.name, "3000");
            assert!(
                caught(&over, var.name),
                "{platform}: {} over the budget",
                var.name
            );
        }
    }
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
    assert_eq!(
        trigger["methods"],
        serde_json::json!(["get", "put", "delete"])
    );
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
    let hash = token_hash("s3cret");
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

/// The SAM template's resources: each logical id with the lines under it.
fn sam_resources(sam: &str) -> Vec<(String, String)> {
    let body = sam
        .split("\nResources:\n")
        .nth(1)
        .and_then(|r| r.split("\nOutputs:\n").next())
        .expect("template.yaml: Resources, then Outputs");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let id = line
            .strip_prefix("  ")
            .and_then(|l| l.strip_suffix(':'))
            .filter(|l| !l.starts_with([' ', '#']));
        match (id, out.last_mut()) {
            (Some(id), _) => out.push((id.to_owned(), String::new())),
            (None, Some((_, block))) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn sam_resource<'a>(resources: &'a [(String, String)], id: &str) -> &'a str {
    resources
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, block)| block.as_str())
        .unwrap_or_else(|| panic!("template.yaml: no resource {id}"))
}

/// A resource's property (or attribute) line, `    Key: value`, at any depth under it.
fn sam_property<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    block
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
}

/// The condition a resource is created under.
fn sam_resource_condition(block: &str) -> Option<&str> {
    block
        .lines()
        .find_map(|l| l.strip_prefix("    Condition: "))
}

/// The items of a YAML flow sequence's inside (`a, !Not [b, c], d`), split at the top level.
fn flow_items(list: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(list[start..].trim());
    out
}

/// Whether the SAM condition `name` can hold only when `Writes` is `on`: it is `WritesOn`, or an
/// `!And` with a term that is.
fn implies_writes(sam: &str, name: &str) -> bool {
    if name == "WritesOn" {
        return true;
    }
    let conditions = sam
        .split("\nConditions:\n")
        .nth(1)
        .and_then(|c| c.split("\n\n").next())
        .expect("template.yaml: Conditions");
    let Some(definition) = conditions
        .lines()
        .find_map(|l| l.strip_prefix(&format!("  {name}: ")))
    else {
        return false;
    };
    definition
        .strip_prefix("!And [")
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|terms| {
            flow_items(terms).iter().any(|term| {
                term.strip_prefix("!Condition ")
                    .is_some_and(|c| implies_writes(sam, c))
            })
        })
}

/// The conditions of the `- !If` list items around byte `at` of the SAM template, innermost first.
fn enclosing_ifs(sam: &str, at: usize) -> Vec<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = sam[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut bound = indent(&sam[start..]);
    let before: Vec<&str> = sam[..start].lines().collect();
    let mut out = Vec::new();
    for (i, line) in before.iter().enumerate().rev() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') || indent(line) >= bound {
            continue;
        }
        bound = indent(line);
        if line.trim() == "- !If"
            && let Some(condition) = before.get(i + 1).and_then(|l| l.trim().strip_prefix("- "))
        {
            out.push(condition.to_owned());
        }
        if bound == 0 {
            break;
        }
    }
    out
}

/// Whether a SAM resource lets PUT or DELETE through: a route, a method or an invoke permission.
fn sam_writes_method(block: &str) -> bool {
    let route = sam_property(block, "RouteKey")
        .is_some_and(|k| k.contains("PUT ") || k.contains("DELETE "));
    let method = matches!(sam_property(block, "HttpMethod"), Some("PUT" | "DELETE"));
    route || method || block.contains("/PUT/") || block.contains("/DELETE/")
}

/// The path an HTTP API route key of the template routes for `method` under `base` ("" at the root).
fn http_route_path(block: &str, method: &str, base: &str) -> String {
    let key = sam_property(block, "RouteKey").expect("a RouteKey");
    let items = key
        .strip_prefix("!If [AtRoot, ")
        .and_then(|k| k.strip_suffix(']'))
        .map(flow_items)
        .unwrap_or_else(|| {
            panic!("the route key {key} has a form for the root and one under BasePath")
        });
    let key = if base.is_empty() {
        items[0].trim_matches('"').to_owned()
    } else {
        items[1]
            .strip_prefix("!Sub ")
            .expect("a !Sub under BasePath")
            .trim_matches('"')
            .replace("${BasePath}", base)
    };
    key.strip_prefix(&format!("{method} "))
        .unwrap_or_else(|| panic!("{key} is a {method} route"))
        .to_owned()
}

/// Whether an API Gateway route path (a greedy `{proxy+}` last) takes `path`.
fn route_takes(route: &str, path: &str) -> bool {
    match route.strip_suffix("{proxy+}") {
        Some(prefix) => path.len() > prefix.len() && path.starts_with(prefix),
        None => route == path,
    }
}

#[test]
fn every_template_leaves_writes_off_by_default() {
    // The function's environment, parameters at their defaults, says off...
    for (platform, settings) in [
        ("aws", aws_settings()),
        ("azure", azure_settings()),
        ("gcp", cloud_run_settings()),
    ] {
        assert_eq!(
            get(&settings, "DISTTAGS_WRITES").unwrap_or("off"),
            "off",
            "{platform}: writes are off unless the deployer turns them on"
        );
        for key in ["DISTTAGS_WRITE_TOKENS", "DISTTAGS_WRITE_TOKENS_FILE"] {
            assert_eq!(
                get(&settings, key),
                None,
                "{platform} names no write token by default"
            );
        }
    }
    // ... from a parameter whose only other value is on.
    let sam = read("infra/aws/template.yaml");
    assert!(sam.contains("          DISTTAGS_WRITES: !Ref Writes\n"));
    assert!(sam.contains(
        "\n  Writes:\n    Type: String\n    AllowedValues: [\"off\", \"on\"]\n    Default: \"off\"\n"
    ));
    let bicep = read("infra/azure/main.bicep");
    assert!(bicep.contains("{ name: 'DISTTAGS_WRITES', value: writes }"));
    assert!(bicep.contains("@allowed([ 'off', 'on' ])\nparam writes string = 'off'\n"));

    // And the code, so configured, refuses a write with 403 (the shims behind a platform authorizer
    // read their configuration as guarded; Cloud Run's does not).
    let tokens = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tokens.path(), format!("{} alice\n", token_hash("s3cret")))
        .expect("write tokens");
    let gcp = with(
        &cloud_run_settings(),
        "DISTTAGS_AUTH_TOKENS_FILE",
        &tokens.path().display().to_string(),
    );
    for (platform, settings, defaults, token) in [
        ("aws", aws_settings(), Defaults::GUARDED, None),
        ("azure", azure_settings(), Defaults::GUARDED, None),
        ("gcp", gcp, Defaults::CLOUD, Some("s3cret")),
    ] {
        let statuses: Vec<StatusCode> = tag_round_trip(&settings, defaults, "", token)
            .into_iter()
            .map(|(status, beta)| {
                assert_eq!(beta, None, "{platform}: nothing was written");
                status
            })
            .collect();
        assert_eq!(statuses, [StatusCode::FORBIDDEN; 4], "{platform}");
    }
}

#[test]
fn aws_grants_writes_only_with_the_writes_parameter() {
    let sam = read("infra/aws/template.yaml");
    assert!(sam.contains("\n  WritesOn: !Equals [!Ref Writes, \"on\"]\n"));
    assert!(implies_writes(&sam, "HttpApiWrites") && implies_writes(&sam, "RestApiWrites"));
    assert!(!implies_writes(&sam, "RestApiReadOnly") && !implies_writes(&sam, "UseHttpApi"));

    // The role: every action that changes objects is in a policy that exists only with writes on.
    let mut writes = 0;
    for (at, line) in sam.match_indices("Action:") {
        // The rest of the line, and the `- action` lines under it, up to the next key.
        let actions: String = sam[at + line.len()..]
            .lines()
            .take_while(|l| !l.trim_start().starts_with(|c: char| c.is_ascii_uppercase()))
            .collect::<Vec<_>>()
            .join(" ");
        let changes = [
            "s3:Put",
            "s3:Delete",
            "s3:*",
            "s3:Abort",
            "s3:Restore",
            "s3:Replicate",
        ]
        .iter()
        .any(|a| actions.contains(a));
        let deny = sam[..at]
            .rfind("Effect: ")
            .is_some_and(|e| sam[e..at].starts_with("Effect: Deny"));
        if changes && !deny {
            assert_eq!(
                enclosing_ifs(&sam, at).first().map(String::as_str),
                Some("WritesOn"),
                "{actions} is granted only under WritesOn"
            );
            writes += 1;
        }
    }
    assert_eq!(writes, 1, "one statement grants s3:PutObject");
    let put = sam.find("Action: s3:PutObject").expect("s3:PutObject");
    assert!(
        sam[put..]
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("Resource: !Sub"))
            && sam[put..]
                .lines()
                .nth(2)
                .is_some_and(|l| l.ends_with("s3:::${Bucket}/*\"")),
        "on the bucket's objects only"
    );

    // Every route, method and permission that lets PUT or DELETE through exists only with writes on.
    let resources = sam_resources(&sam);
    let mut kinds = Vec::new();
    for (id, block) in &resources {
        if !sam_writes_method(block) {
            continue;
        }
        let condition = sam_resource_condition(block)
            .unwrap_or_else(|| panic!("{id} lets writes through, unconditionally"));
        assert!(
            implies_writes(&sam, condition),
            "{id}: Condition {condition}"
        );
        kinds.push(sam_property(block, "Type").expect("Type").to_owned());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::Method",
            "AWS::ApiGatewayV2::Route",
            "AWS::ApiGatewayV2::Route",
            "AWS::Lambda::Permission",
            "AWS::Lambda::Permission",
        ],
        "PUT and DELETE: HTTP API routes, REST methods, invoke permissions"
    );
    assert_ne!(sam_default(&sam, "WriteScope"), "");
    for id in ["HttpApiPutRoute", "HttpApiDeleteRoute"] {
        let block = sam_resource(&resources, id);
        assert_eq!(sam_resource_condition(block), Some("HttpApiWrites"));
        assert_eq!(
            sam_property(block, "AuthorizationType"),
            Some("JWT"),
            "{id}"
        );
        assert_eq!(
            sam_property(block, "AuthorizerId"),
            Some("!Ref HttpApiAuthorizer"),
            "{id}"
        );
        assert!(
            block.contains("      AuthorizationScopes:\n        - !Ref WriteScope\n"),
            "{id} needs the write scope"
        );
    }
    for id in ["RestApiProxyPut", "RestApiProxyDelete"] {
        let block = sam_resource(&resources, id);
        assert_eq!(sam_resource_condition(block), Some("RestApiWrites"));
        assert_eq!(
            sam_property(block, "AuthorizationType"),
            Some("CUSTOM"),
            "{id}"
        );
        assert_eq!(
            sam_property(block, "AuthorizerId"),
            Some("!Ref RestApiAuthorizer"),
            "{id}"
        );
        assert_eq!(
            sam_property(block, "ResourceId"),
            Some("!Ref RestApiProxyResource")
        );
    }
    // The REST stage serves a deployment made with the write methods only when writes are on.
    assert_eq!(
        sam_property(sam_resource(&resources, "RestApiStage"), "DeploymentId"),
        Some("!If [WritesOn, !Ref RestApiWriteDeployment, !Ref RestApiDeployment]")
    );
    let with_writes = sam_resource(&resources, "RestApiWriteDeployment");
    assert_eq!(sam_resource_condition(with_writes), Some("RestApiWrites"));
    let depends = sam_property(with_writes, "DependsOn").expect("DependsOn");
    assert!(depends.contains("RestApiProxyPut") && depends.contains("RestApiProxyDelete"));
    let read_only = sam_resource(&resources, "RestApiDeployment");
    assert_eq!(sam_resource_condition(read_only), Some("RestApiReadOnly"));
    assert_eq!(
        sam_property(read_only, "DependsOn"),
        Some("RestApiProxyGet")
    );
}

#[test]
fn azure_grants_writes_only_with_the_writes_parameter() {
    let bicep = read("infra/azure/main.bicep");
    // Azure's built-in role ids.
    assert!(bicep.contains("var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'\n"));
    assert!(bicep.contains("var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'\n"));
    assert!(
        bicep.contains(
            "var packumentRole = writes == 'on' ? blobDataContributor : blobDataReader\n"
        )
    );
    // Each role assignment: the packuments' container gets packumentRole, and Contributor is
    // granted directly only on the package container, to the deployer.
    let mut on_packuments = 0;
    for block in bicep.split("\nresource ").skip(1) {
        let Some(block) = block
            .split_once(" 'Microsoft.Authorization/roleAssignments@")
            .map(|(_, b)| b.split("\n}\n").next().unwrap_or(b))
        else {
            continue;
        };
        let scope = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("scope: "))
            .expect("an assignment's scope");
        let role = block
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ")
            })
            .and_then(|r| r.strip_suffix(')'))
            .expect("a built-in role");
        assert!(
            block.contains(&format!("name: guid({scope}.id, "))
                && block.contains(&format!(", {role})\n")),
            "an assignment's name is derived from its scope and role (a role cannot change)"
        );
        match scope {
            "container" | "storage" => {
                assert_eq!(role, "packumentRole", "the packuments get packumentRole");
                on_packuments += 1;
            }
            "packageContainer" | "hostStorage" => assert_ne!(role, "packumentRole"),
            other => panic!("a role assignment on {other}"),
        }
    }
    assert_eq!(on_packuments, 1);
    // function.json is static: it takes the write methods always, and the handler refuses them
    // while DISTTAGS_WRITES is off (every_template_leaves_writes_off_by_default).
    let function = json("infra/azure/disttags/function.json");
    assert_eq!(
        function["bindings"][0]["methods"],
        serde_json::json!(["get", "put", "delete"])
    );
}

#[test]
fn cloud_run_grants_writes_only_with_writes_on() {
    let service = read("infra/gcp/service.yaml");
    assert!(
        service.contains(CLOUD_RUN_WRITES_SED),
        "service.yaml gives the render command"
    );
    assert!(
        read("infra/README.md").contains(CLOUD_RUN_WRITES_SED),
        "so does the deploy guide"
    );
    // By default, no write token file and no second secret: they are in comments only...
    assert!(
        service
            .lines()
            .filter(|l| l.contains("write-token") || l.contains("WRITE_TOKENS"))
            .all(|l| l.trim_start().starts_with('#')),
        "service.yaml mounts no write tokens by default"
    );
    // ... which the writes rendering adds.
    let rendered = cloud_run_with_writes(&service);
    let settings = cloud_run_settings_in(&rendered);
    assert_eq!(get(&settings, "DISTTAGS_WRITES"), Some("on"));
    let file = get(&settings, "DISTTAGS_WRITE_TOKENS_FILE").expect("a write token file");
    let (dir, item) = file.rsplit_once('/').expect("a path");
    assert!(
        rendered.contains(&format!(
            "            - name: write-tokens\n              mountPath: {dir}\n              readOnly: true\n"
        )),
        "{dir} is mounted"
    );
    assert!(rendered.contains(&format!(
        "        - name: write-tokens\n          secret:\n            secretName: disttags-write-token-hashes\n            items:\n              - key: latest\n                path: {item}\n"
    )));
    assert_eq!(
        cloud_run_settings_in(&rendered).len(),
        cloud_run_settings().len() + 1,
        "the rendering adds the write token file and changes nothing else"
    );

    // The code, configured so: a write needs a write token, which also reads.
    let (reads, writes) = (
        tempfile::NamedTempFile::new().expect("temp file"),
        tempfile::NamedTempFile::new().expect("temp file"),
    );
    std::fs::write(reads.path(), format!("{} alice\n", token_hash("reader")))
        .expect("write tokens");
    std::fs::write(writes.path(), format!("{} ci\n", token_hash("writer"))).expect("write tokens");
    let settings = with(
        &with(
            &settings,
            "DISTTAGS_AUTH_TOKENS_FILE",
            &reads.path().display().to_string(),
        ),
        "DISTTAGS_WRITE_TOKENS_FILE",
        &writes.path().display().to_string(),
    );
    let put = |token: Option<&'static str>| {
        exchange(
            &with(&settings, "DISTTAGS_LOG", "none"),
            Defaults::CLOUD,
            &[Call {
                method: Method::PUT,
                path: "/-/package/tagged/dist-tags/beta".into(),
                body: Some("\"1.0.0\""),
                token,
            }],
        )
        .remove(0)
        .0
    };
    assert_eq!(put(None), StatusCode::UNAUTHORIZED);
    assert_eq!(put(Some("reader")), StatusCode::FORBIDDEN);
    assert_eq!(
        write_statuses(&tag_round_trip(
            &settings,
            Defaults::CLOUD,
            "",
            Some("writer")
        )),
        tags_written()
    );
}

/// What `infra/gcp/iam.sh PROJECT BUCKET` asks gcloud, run with `writes` as WRITES against a gcloud
/// that records its arguments and reports `bound` as the service account's other bucket role:
/// the script's exit status and one line per gcloud call.
#[cfg(unix)]
fn iam_sh(writes: Option<&str>, bound: &str) -> (bool, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().expect("temp dir");
    let log = bin.path().join("calls");
    let gcloud = bin.path().join("gcloud");
    std::fs::write(
        &gcloud,
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$GCLOUD_CALLS\"\ncase \"$*\" in *get-iam-policy*) printf '%s' \"$GCLOUD_BOUND\" ;; esac\n",
    )
    .expect("fake gcloud");
    std::fs::set_permissions(&gcloud, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = std::process::Command::new("bash");
    command
        .arg(repo_root().join("infra/gcp/iam.sh"))
        .args(["proj", "bkt"])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("GCLOUD_CALLS", &log)
        .env("GCLOUD_BOUND", bound)
        .env_remove("WRITES");
    if let Some(writes) = writes {
        command.env("WRITES", writes);
    }
    let output = command.output().expect("bash runs iam.sh");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    (
        output.status.success(),
        calls.lines().map(str::to_owned).collect(),
    )
}

#[cfg(unix)]
#[test]
fn iam_sh_grants_bucket_writes_only_with_writes_on() {
    let member = "--member serviceAccount:disttags-reader@proj.iam.gserviceaccount.com";
    let bucket = |verb: &str, role: &str| {
        format!(
            "storage buckets {verb}-iam-policy-binding gs://bkt --project proj {member} --role {role}"
        )
    };
    let secret = |name: &str| {
        format!(
            "secrets add-iam-policy-binding {name} --project proj {member} --role roles/secretmanager.secretAccessor"
        )
    };
    let (viewer, user) = ("roles/storage.objectViewer", "roles/storage.objectUser");
    for writes in [None, Some("off"), Some("on")] {
        let on = writes == Some("on");
        let (grant, other) = if on { (user, viewer) } else { (viewer, user) };
        for bound in ["", other] {
            let (ok, calls) = iam_sh(writes, bound);
            assert!(ok, "WRITES={writes:?}: {calls:?}");
            let has = |call: &str| calls.iter().any(|c| c == call);
            assert!(
                has(&bucket("add", grant)),
                "WRITES={writes:?} grants {grant}: {calls:?}"
            );
            assert!(!has(&bucket("add", other)), "and not {other}");
            assert!(
                calls.iter().any(|c| c.contains("get-iam-policy gs://bkt")
                    && c.contains(&format!("bindings.role=\"{other}\""))),
                "it looks for {other}"
            );
            assert_eq!(
                has(&bucket("remove", other)),
                !bound.is_empty(),
                "and removes it if bound"
            );
            assert!(has(&secret("disttags-token-hashes")));
            assert_eq!(has(&secret("disttags-write-token-hashes")), on);
            assert!(
                calls
                    .iter()
                    .all(|c| !c.contains("remove-iam-policy-binding") || c.contains(other)),
                "it removes nothing else"
            );
        }
    }
    let (ok, calls) = iam_sh(Some("yes"), "");
    assert!(!ok && calls.is_empty(), "an unknown WRITES changes nothing");
}

#[test]
fn write_routes_reach_the_registry_write_paths() {
    // The shims whose platform authorizer guards the write routes read DISTTAGS_WRITES=on as
    // "the authorizer decides"; Cloud Run's needs write tokens (cloud_run_grants_writes_only_with_writes_on).
    assert!(read("shims/lambda/src/main.rs").contains("Defaults::GUARDED"));
    assert!(read("shims/azure/src/lib.rs").contains("Defaults::GUARDED"));
    assert!(read("shims/cloudrun/src/lib.rs").contains("Defaults::CLOUD"));

    // AWS: the HTTP API's write routes take the write paths under BasePath, and the REST API's
    // methods sit on the same greedy root resource as GET; the function answers them there.
    let sam = read("infra/aws/template.yaml");
    let resources = sam_resources(&sam);
    assert_eq!(
        sam_property(sam_resource(&resources, "RestApiProxyPut"), "ResourceId"),
        sam_property(sam_resource(&resources, "RestApiProxyGet"), "ResourceId")
    );
    for base in ["", "/registry"] {
        for (id, method) in [("HttpApiPutRoute", "PUT"), ("HttpApiDeleteRoute", "DELETE")] {
            let route = http_route_path(sam_resource(&resources, id), method, base);
            for name in ["tagged", "@scope%2ftagged", "@scope/tagged"] {
                let path = format!("{base}/-/package/{name}/dist-tags/beta");
                assert!(route_takes(&route, &path), "{id} ({route}) takes {path}");
            }
            assert!(
                !route_takes(&route, &format!("{base}/-/ping")),
                "{id} ({route}) takes only package paths"
            );
        }
        let settings = with(
            &with(&aws_settings(), "DISTTAGS_WRITES", "on"),
            "DISTTAGS_BASE_PATH",
            if base.is_empty() { "/" } else { base },
        );
        assert_eq!(
            write_statuses(&tag_round_trip(&settings, Defaults::GUARDED, base, None)),
            tags_written(),
            "aws under {base:?}"
        );
    }

    // Azure: the catch-all trigger takes PUT and DELETE; the shim serves under the route prefix.
    let prefix = json("infra/azure/host.json")["extensions"]["http"]["routePrefix"]
        .as_str()
        .expect("routePrefix")
        .to_owned();
    let settings = with(
        &with(&azure_settings(), "DISTTAGS_WRITES", "on"),
        "DISTTAGS_BASE_PATH",
        &format!("/{prefix}"),
    );
    assert_eq!(
        write_statuses(&tag_round_trip(
            &settings,
            Defaults::GUARDED,
            &format!("/{prefix}"),
            None
        )),
        tags_written(),
        "azure"
    );
}
