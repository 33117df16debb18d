//! Crash test on the `local` backend (see `common/kill.rs` for the loop and what it checks).
//! The input is throttled to 40,000 records/s so that the kills land while records flow and
//! after checkpoints were decided, not only during start-up.

mod common;
use common::kill::kill_loop;
use common::*;

#[test]
fn kill_loop_local_backend_is_exactly_once() {
    let dir = Dir::new();
    let state = format!("  backend_type: local\n  local_config: {{ path: {} }}\n", dir.path("state").display());
    kill_loop(&dir, &state);
}
