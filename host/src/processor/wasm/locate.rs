//! Which record of a batch makes the plugin trap: the part of a trap report a plugin author acts
//! on besides the guest function (`instance.rs` names that).
//!
//! Contract: after a batch trapped on every attempt, the plugin gets the batch's records again
//! one at a time, in order, each call a dry run (its state writes and timers are discarded, so
//! the search changes nothing; a trap drops the instance and the next call starts a fresh one),
//! until one traps. The failure message then names that record: its index in the batch, its
//! partition and offset, and its first 64 bytes. A record that traps only after the ones before
//! it changed the state is not found this way, and the message says so. The search stops after
//! 64 records or 2 seconds, so a slow plugin cannot stall the stream on it.

use super::instance::WasmProcessor;
use crate::processor::{BatchCtx, StateSlot};
use crate::record::Record;
use std::time::{Duration, Instant};

const MAX_RECORDS: usize = 64;
const MAX_TIME: Duration = Duration::from_secs(2);

/// The first 64 bytes of `bytes`, as text (lossy), with "..." when there is more.
pub fn head(bytes: &[u8]) -> String {
    format!("{}{}", String::from_utf8_lossy(&bytes[..bytes.len().min(64)]), if bytes.len() > 64 { "..." } else { "" })
}

impl WasmProcessor {
    /// "; record I ... traps on its own ..." for the failure message of a batch that trapped.
    pub(super) fn trapping_record(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> String {
        let started = Instant::now();
        self.dry_run = true;
        let mut found = None;
        for (i, r) in records.iter().enumerate().take(MAX_RECORDS) {
            if started.elapsed() > MAX_TIME {
                break;
            }
            if records.len() == 1 || (self.attempt(ctx, std::slice::from_ref(r), state, 0).is_err() && self.trapped) {
                found = Some((i, r));
                break;
            }
        }
        self.dry_run = false;
        match found {
            Some((i, r)) => format!(
                "; the record at index {i} of the batch (partition {}, offset {}) traps on its own: {}",
                r.partition,
                r.offset,
                head(r.value.as_deref().unwrap_or_default())
            ),
            None if records.len() > MAX_RECORDS || started.elapsed() > MAX_TIME => {
                format!("; no record of the first ones tried traps on its own (the search stops at {MAX_RECORDS} records or {} s)", MAX_TIME.as_secs())
            }
            None => "; no record traps on its own: the trap depends on the batch as a whole".to_string(),
        }
    }
}
