//! Default directories taken from the environment.

use std::path::PathBuf;

/// The compiled-plugin cache: `$ARKFLOW_PLUGIN_CACHE` (`off` disables), else
/// `$XDG_CACHE_HOME/arkflow/plugins`, else `$HOME/.cache/arkflow/plugins`.
pub fn plugin_cache() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = env("ARKFLOW_PLUGIN_CACHE") {
        return (v != "off").then(|| PathBuf::from(v));
    }
    if let Some(x) = env("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("arkflow/plugins"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".cache/arkflow/plugins"))
}
