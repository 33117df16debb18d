//! Rules that span more than one section, checked on the finished model.
//!
//! Contract: [`check`] returns the first violation, located at the offending value (or, when it
//! was defaulted, at the nearest enclosing node present in the file). Rules: at least one
//! stream; stream names and state operator_ids unique and non-empty; `key_by` non-empty;
//! `thread_num <= state_management.key_groups`; `custom_keys` non-empty, unique, not `default`;
//! a processor with `on_failure: error_output` needs the stream's `error_output`; no two outputs
//! (main, error or named, of any stream) write the same file; an input that cannot be replayed (stdin) cannot be exactly-once.

use std::collections::HashMap;

use super::ctx::Ctx;
use super::error::{ConfigError, ConfigErrorKind as K};
use super::model::*;
use super::spans::YPath;

pub(crate) fn check(ctx: &Ctx, cfg: &EngineConfig) -> Result<(), ConfigError> {
    let streams_path = YPath::root().key("streams");
    if cfg.streams.is_empty() {
        return Err(ctx.invalid(&streams_path, "streams must list at least one stream"));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut operators: HashMap<&str, usize> = HashMap::new();
    let mut files: HashMap<std::path::PathBuf, YPath> = HashMap::new();
    for (i, s) in cfg.streams.iter().enumerate() {
        let sp = streams_path.index(i);
        let name_at = sp.key("name");
        if s.name.is_empty() {
            return Err(ctx.invalid(&name_at, format!("{name_at} must not be empty")));
        }
        if let Some(first) = names.insert(&s.name, i) {
            return Err(ctx.invalid(&name_at, format!("duplicate stream name `{}`: streams[{first}] has the same name", s.name)));
        }
        if let Some(k) = &s.key_by {
            if k.is_empty() {
                let at = sp.key("key_by");
                return Err(ctx.invalid(&at, format!("{at} must not be empty")));
            }
        }
        let state_at = sp.key("state");
        let op_at = state_at.key("operator_id");
        if s.state.operator_id.is_empty() {
            return Err(ctx.invalid(&op_at, format!("{op_at} must not be empty")));
        }
        if let Some(first) = operators.insert(&s.state.operator_id, i) {
            let msg = format!(
                "duplicate state operator_id `{}`: streams[{first}] uses it too (operator ids name checkpointed state and must be unique)",
                s.state.operator_id
            );
            return Err(ctx.invalid(&op_at, msg));
        }
        let groups = cfg.state_management.key_groups as usize;
        if s.pipeline.thread_num > groups {
            let at = sp.key("pipeline").key("thread_num");
            let msg =
                format!("{at} ({}) must not exceed state_management.key_groups ({groups}): each worker owns at least one key group", s.pipeline.thread_num);
            return Err(ctx.at_value(K::Invalid, &at, msg));
        }
        check_custom_keys(ctx, &s.state.custom_keys, &state_at.key("custom_keys"))?;
        let sm = &cfg.state_management;
        if !s.input.caps().replayable && sm.enabled && sm.exactly_once {
            let at = sp.key("input").key("type");
            let ty = s.input.type_name();
            let msg = format!("{at}: {ty} cannot be replayed after a restart, so state_management.exactly_once: true cannot hold for it; use a file or kafka input, or set exactly_once: false (at-least-once)");
            return Err(ctx.invalid(&at, msg));
        }
        let named = s.outputs.iter().map(|(n, o)| (sp.key("outputs").key(n), Some(o)));
        for (at, out) in [(sp.key("output"), Some(&s.output)), (sp.key("error_output"), s.error_output.as_ref())].into_iter().chain(named) {
            let Some(file) = out.and_then(|o| o.caps().file) else { continue };
            let at = at.key("path");
            // Compare by absolute, normalized path: `out/x` and `./out/x` are one file.
            let abs = std::path::absolute(&file).unwrap_or_else(|_| file.clone());
            let norm: std::path::PathBuf = abs.components().collect();
            if let Some(first) = files.insert(norm, at.clone()) {
                let msg = format!("{at} writes {}, which {first} writes too: two outputs in one file would interleave (and exactly-once parts of one would be taken for the other's)", file.display());
                return Err(ctx.at_value(K::Invalid, &at, msg));
            }
        }
        for (j, p) in s.pipeline.processors.iter().enumerate() {
            if p.caps().needs_error_output && s.error_output.is_none() {
                let at = sp.key("pipeline").key("processors").index(j).key("on_failure");
                let msg = format!("{at} is `error_output` but {sp} has no `error_output:` section");
                return Err(ctx.invalid(&at, msg));
            }
        }
    }
    Ok(())
}

fn check_custom_keys(ctx: &Ctx, keys: &[String], path: &YPath) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, key) in keys.iter().enumerate() {
        let at = path.index(k);
        if key.is_empty() {
            return Err(ctx.invalid(&at, format!("{at} must not be empty")));
        }
        if key == DEFAULT_STORE {
            let msg = format!("{at}: `{DEFAULT_STORE}` is reserved for the operator's implicit store");
            return Err(ctx.invalid(&at, msg));
        }
        if key.starts_with('$') {
            return Err(ctx.invalid(&at, format!("{at}: `{key}`: store names starting with `$` are reserved for the host's own stores (plugin timers)")));
        }
        if let Some(first) = seen.insert(key, k) {
            return Err(ctx.invalid(&at, format!("duplicate custom key `{key}` in {path} (also at index {first})")));
        }
    }
    Ok(())
}
