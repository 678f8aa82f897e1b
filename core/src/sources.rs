//! The files a configuration names, read before its pairs are parsed: the token file and npm's
//! user configuration (`.npmrc`).

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::vars::{self, Env};

/// The text of every file the configuration refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// `DISTTAGS_AUTH_TOKENS_FILE`: its path and text.
    pub token_file: Option<(String, String)>,
    /// `DISTTAGS_WRITE_TOKENS_FILE`: its path and text.
    pub write_token_file: Option<(String, String)>,
    /// npm's user configuration, when the upstream is not set otherwise: its path and text.
    pub npmrc: Option<(PathBuf, String)>,
}

impl Sources {
    /// Reads the files `env` names. A token file that cannot be read is a mistake; a missing
    /// `.npmrc` only means npm names no registry.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let token_file = read_named(env, &vars::AUTH_TOKENS_FILE)?;
        let write_token_file = read_named(env, &vars::WRITE_TOKENS_FILE)?;
        let upstream_set = env.get(&vars::UPSTREAM).is_some()
            || env.get(&vars::CODEBOX_REGISTRY).is_some()
            || npm_variable(env, vars::NPM_CONFIG_REGISTRY.name).is_some();
        let npmrc = if upstream_set {
            None
        } else {
            npmrc_path(env).and_then(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                Some((path, text))
            })
        };
        Ok(Self {
            token_file,
            write_token_file,
            npmrc,
        })
    }
}

/// The path `var` names and the file's text; a file that cannot be read is a mistake.
fn read_named(env: &Env, var: &vars::Var) -> Result<Option<(String, String)>, ConfigError> {
    let Some(path) = env.get(var) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("{}={path}: {e}", var.name)))?;
    Ok(Some((path.to_owned(), text)))
}

/// An npm variable, whose name npm reads in any case (`NPM_CONFIG_REGISTRY` too).
pub(crate) fn npm_variable<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v)
}

/// Where npm reads its user configuration: `npm_config_userconfig`, else `$HOME/.npmrc`.
fn npmrc_path(env: &Env) -> Option<PathBuf> {
    match npm_variable(env, vars::NPM_CONFIG_USERCONFIG.name) {
        Some(path) => Some(PathBuf::from(path)),
        None => env
            .raw(vars::HOME.name)
            .map(|home| PathBuf::from(home).join(".npmrc")),
    }
}
