//! Reading the configuration: the YAML file, then the `DROVER_<SECTION>__<KEY>` variables
//! over it, each error naming the key (and the variable, when the value came from one).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::*;

impl Config {
    /// Loads the configuration: the YAML file at `path` (or `./drover.yaml` if `path` is
    /// `None` and that file exists), then the `DROVER_<SECTION>__<KEY>` variables of `env`,
    /// which win, then [`Config::validate`].
    ///
    /// An environment value is parsed as a YAML scalar (`4`, `true`, `5s`, `[a, b]`); an
    /// empty value is null, which clears an optional key. Errors name the dotted key, and
    /// the variable when the value came from `env`. An explicit `path` that does not exist
    /// is an error; a missing `./drover.yaml` is not.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match path {
            Some(path) => read_file(path)?.unwrap_or(Value::Null),
            None => match read_file(Path::new(DEFAULT_PATH)) {
                Ok(tree) => tree.unwrap_or(Value::Null),
                Err(ConfigError::Read { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    Value::Null
                }
                Err(err) => return Err(err),
            },
        };
        empty_sections_as_mappings(&mut tree);
        let origins = overlay_env(&mut tree, env)?;
        let config = from_tree(tree, &origins)?;
        config.validate()?;
        Ok(config)
    }
}

/// Reads and parses a YAML file; `Ok(None)` for a file holding no document.
fn read_file(path: &Path) -> Result<Option<Value>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut tree: Value = serde_yaml::from_str(&text).map_err(parse_error)?;
    // Lets a file share settings between sections with `<<: *anchor`.
    tree.apply_merge().map_err(parse_error)?;
    Ok(Some(tree))
}

/// `workers:` with every key commented out is a null section; read it as an empty one
/// (and `schedules:` as an empty list).
fn empty_sections_as_mappings(tree: &mut Value) {
    if let Value::Mapping(sections) = tree {
        for (name, section) in sections.iter_mut() {
            if section.is_null() {
                *section = match name.as_str() {
                    Some("schedules") => Value::Sequence(Vec::new()),
                    _ => Value::Mapping(Mapping::new()),
                };
            }
        }
    }
}

/// Sections and their keys, in declaration order, as the defaults serialize them.
fn known_keys() -> Vec<(String, Vec<String>)> {
    let defaults = serde_yaml::to_value(Config::default())
        .expect("the default config serializes to a YAML mapping");
    let Value::Mapping(sections) = defaults else {
        return Vec::new();
    };
    sections
        .into_iter()
        .filter_map(|(section, keys)| {
            let section = section.as_str()?.to_owned();
            let keys = keys
                .as_mapping()?
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect();
            Some((section, keys))
        })
        .collect()
}

/// Writes the `DROVER_<SECTION>__<KEY>` variables of `env` into `tree`; returns which
/// variable set each dotted key, so later errors can name it.
fn overlay_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut origins = HashMap::new();
    let mut known = None;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains(ENV_SEPARATOR) {
            continue;
        }
        let (section, key) = match rest.split(ENV_SEPARATOR).collect::<Vec<_>>()[..] {
            [section, key] if !section.is_empty() && !key.is_empty() => {
                (section.to_lowercase(), key.to_lowercase())
            }
            _ => {
                return Err(invalid(
                    name,
                    format!(
                        "expected a name of the form {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>"
                    ),
                ))
            }
        };
        let dotted = format!("{section}.{key}");
        let known = known.get_or_insert_with(known_keys);
        let Some((_, keys)) = known.iter().find(|(name, _)| *name == section) else {
            let sections: Vec<&str> = known.iter().map(|(name, _)| name.as_str()).collect();
            return Err(invalid(
                dotted,
                format!(
                    "set by {name}: unknown section `{section}` (expected one of {})",
                    sections.join(", ")
                ),
            ));
        };
        if !keys.contains(&key) {
            return Err(invalid(
                dotted,
                format!(
                    "set by {name}: unknown key (expected one of {})",
                    keys.join(", ")
                ),
            ));
        }
        let value = env_value(&dotted, &raw);
        if tree.is_null() {
            *tree = Value::Mapping(Mapping::new());
        }
        // A file whose top level or section is not a mapping keeps its own error, which
        // deserializing reports against the file's key.
        if let Value::Mapping(sections) = tree {
            let entry = sections
                .entry(Value::String(section))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(keys) = entry {
                keys.insert(Value::String(key), value);
                origins.insert(dotted, name);
            }
        }
    }
    Ok(origins)
}

/// Parses one environment value for the key `dotted`.
fn env_value(dotted: &str, raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if VERBATIM_ENV_KEYS.contains(&dotted) {
        return Value::String(raw.to_owned());
    }
    if LIST_ENV_KEYS.contains(&dotted) && !raw.trim_start().starts_with('[') {
        let items = raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| Value::String(item.to_owned()))
            .collect();
        return Value::Sequence(items);
    }
    // Not YAML (say `a: b: c`): keep the text, and let deserializing judge it.
    serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Deserializes the merged tree, naming the failing key and, when `origins` says the value
/// came from the environment, its variable.
fn from_tree(tree: Value, origins: &HashMap<String, String>) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|err| {
        let path = err.path().to_string();
        let key = if path == "." {
            "(top level)".to_owned()
        } else {
            path
        };
        // `workers.queues[2]` came from the variable that set `workers.queues`.
        let base = key.split('[').next().unwrap_or(&key);
        let message = match origins.get(base) {
            Some(var) => format!("set by {var}: {}", err.inner()),
            None => err.inner().to_string(),
        };
        invalid(key, message)
    })
}
