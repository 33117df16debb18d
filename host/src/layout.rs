//! Every object key of the state store, in one place.
//!
//! Contract: a stream's objects live under its checkpoint scope (`{operator_id}`, or a group
//! session's `{operator_id}/sessions/{g}`). Numbers are zero-padded to 20 digits (key groups to 5)
//! so that a listing sorts them in order. Nothing else in the host builds a key or a listing
//! prefix by hand; readers of listings use [`parse_tail`] and [`parse_epoch`].
//!
//! | key | what |
//! |---|---|
//! | `{scope}/generations/{g}` | a process start's claim of generation `g` (create-only) |
//! | `{scope}/commits/{e}` | decision slot `e` (create-only): commit, abandon or fence |
//! | `{scope}/manifests/{e}-g{g}` | the manifest of epoch `e` written by generation `g` |
//! | `{scope}/data/{e}/g{g}-{who}-{seq}.snap`, `.../base-g{g}.snap` | state files (deltas, compacted bases) |
//! | `{scope}/committed/{e}` | every sink commit of epoch `e` done |
//! | `{scope}/latest` | the last decided epoch (a hint for group take-overs) |
//! | `{scope}/savepoints/{name}/manifest`, `.../state.snap` | a savepoint |
//! | `{scope}/probe/...` | the create-only probe (deleted at once) |
//! | `{sink scope}/outbox/{e}-g{g}`, `{sink scope}/published/{e}` | a Kafka outbox and its publish markers |
//! | `{op}/sessions/{g}` | a group session's scope |
//! | `{op}/keygroups/{k}/{n}` | key group `k`'s claims |

/// Key `{scope}/{kind}/{n}` (n zero-padded).
pub fn key(scope: &str, kind: &str, n: u64) -> String {
    format!("{scope}/{kind}/{n:020}")
}

/// The listing prefix of one kind of object of `scope`: `{scope}/{kind}/`.
pub fn prefix(scope: &str, kind: &str) -> String {
    format!("{scope}/{kind}/")
}

/// Decision slot `epoch`.
pub fn slot(scope: &str, epoch: u64) -> String {
    key(scope, "commits", epoch)
}

/// The marker of `epoch`'s finished sink commits.
pub fn committed(scope: &str, epoch: u64) -> String {
    key(scope, "committed", epoch)
}

/// The claim of generation `g`.
pub fn generation(scope: &str, g: u64) -> String {
    key(scope, "generations", g)
}

/// The manifest of `epoch` written by `generation`.
pub fn manifest(scope: &str, epoch: u64, generation: u64) -> String {
    format!("{scope}/manifests/{epoch:020}-g{generation}")
}

/// A state file of `epoch`; `name` tells who wrote it (`w3`, `carry`).
pub fn data(scope: &str, epoch: u64, generation: u64, name: &str, seq: u32) -> String {
    format!("{scope}/data/{epoch:020}/g{generation}-{name}-{seq}.snap")
}

/// A compacted base holding everything up to `upto`.
pub fn base(scope: &str, upto: u64, generation: u64) -> String {
    format!("{scope}/data/{upto:020}/base-g{generation}.snap")
}

/// The last decided epoch of `scope` (a hint, overwritten).
pub fn latest(scope: &str) -> String {
    format!("{scope}/latest")
}

/// The manifest of savepoint `name`.
pub fn savepoint_manifest(scope: &str, name: &str) -> String {
    format!("{scope}/savepoints/{name}/manifest")
}

/// The state file of savepoint `name`.
pub fn savepoint_state(scope: &str, name: &str) -> String {
    format!("{scope}/savepoints/{name}/state.snap")
}

/// A fresh key for the create-only probe.
pub fn probe(scope: &str, unique: &str) -> String {
    format!("{scope}/probe/create-only-{unique}")
}

/// The scope of a sink's own objects: the checkpoint scope for the main output, `{scope}/{sink}`
/// for any other sink (see `engine::sinks`).
pub fn sink_scope(scope: &str, sink: &str) -> String {
    if sink == "output" {
        scope.to_string()
    } else {
        format!("{scope}/{sink}")
    }
}

/// The outbox object of `epoch` written by `generation`.
pub fn outbox(scope: &str, epoch: u64, generation: u64) -> String {
    format!("{scope}/outbox/{epoch:020}-g{generation}")
}

/// The marker of `epoch`'s outbox records all published.
pub fn published(scope: &str, epoch: u64) -> String {
    key(scope, "published", epoch)
}

/// The checkpoint scope of group session `g` of operator `op`.
pub fn session_scope(op: &str, g: u64) -> String {
    key(op, "sessions", g)
}

/// The listing prefix of key group `k`'s claims.
pub fn claims_prefix(op: &str, k: u32) -> String {
    format!("{op}/keygroups/{k:05}/")
}

/// Claim `n` of key group `k`.
pub fn claim(op: &str, k: u32, n: u64) -> String {
    format!("{}{n:020}", claims_prefix(op, k))
}

/// The number at the end of a listed key (`.../00000000000000000042` -> 42).
pub fn parse_tail(k: &str) -> Option<u64> {
    k.rsplit('/').next()?.parse().ok()
}

/// The epoch a listed key starts its last segment with (`.../00000000000000000042-g3` -> 42).
pub fn parse_epoch(k: &str) -> Option<u64> {
    let last = k.rsplit('/').next()?;
    last.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_number_order_and_parse_back() {
        assert!(slot("op", 9) < slot("op", 10));
        assert_eq!(parse_tail(&slot("op", 42)), Some(42));
        assert_eq!(parse_epoch(&manifest("op", 42, 3)), Some(42));
        assert_eq!(parse_tail(&claim("op", 7, 5)), Some(5));
        assert!(claim("op", 7, 5).starts_with(&claims_prefix("op", 7)));
        assert_eq!(session_scope("op", 3), "op/sessions/00000000000000000003");
        assert_eq!(sink_scope("op", "output"), "op");
        assert_eq!(sink_scope("op", "outputs.audit"), "op/outputs.audit");
    }
}
