//! The Functions host's side: where the function app's `host.json` is, and the HTTP route prefix it
//! sets, read from it so the two cannot drift.

use std::path::PathBuf;

use serde_json::Value;

/// `host.json` of the function app: in `AzureWebJobsScriptRoot`, else the working directory.
pub fn host_json_path(env: &disttags_core::Env) -> PathBuf {
    env.get(&disttags_core::vars::AZURE_SCRIPT_ROOT)
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("host.json")
}

/// The host's HTTP route prefix as `/api` (or empty), read from `host.json` so the two cannot drift.
pub fn route_prefix(host_json: &std::path::Path) -> Result<String, String> {
    let text = match std::fs::read_to_string(host_json) {
        Ok(text) => text,
        // Without a host.json the host's own default applies.
        Err(_) => return Ok("/api".into()),
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", host_json.display()))?;
    let prefix = match doc.pointer("/extensions/http/routePrefix") {
        None => "api",
        Some(Value::String(p)) => p.as_str(),
        Some(_) => {
            return Err(format!(
                "{}: extensions.http.routePrefix must be a string",
                host_json.display()
            ));
        }
    };
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_prefix_from_host_json() {
        let dir = std::env::temp_dir().join(format!("disttags-azure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("host.json");
        assert_eq!(
            route_prefix(&file).as_deref(),
            Ok("/api"),
            "no host.json: the host's default"
        );
        std::fs::write(
            &file,
            r#"{"version":"2.0","extensions":{"http":{"routePrefix":""}}}"#,
        )
        .expect("w");
        assert_eq!(route_prefix(&file).as_deref(), Ok(""));
        std::fs::write(&file, r#"{"extensions":{"http":{"routePrefix":"/npm/"}}}"#).expect("w");
        assert_eq!(route_prefix(&file).as_deref(), Ok("/npm"));
        std::fs::write(&file, r#"{"extensions":{"http":{"routePrefix":3}}}"#).expect("w");
        assert!(route_prefix(&file).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
