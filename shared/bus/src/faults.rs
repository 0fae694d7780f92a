//! Fault points: named places where the fault-injection suite
//! (`tests/faults`) makes a service fail exactly where a crash hurts most —
//! after a transaction commits but before its events are published, after a
//! consumer commits but before it acks. They are the `fail` crate's points,
//! inert unless armed by the `FAILPOINTS` environment variable at start
//! (`name=actions;name=actions`, the `fail` crate's syntax), which nobody
//! sets in production.
//!
//! Two actions matter here: `return(kill)` makes the process SIGKILL itself
//! at the point (no destructor, no flush: a crash), and at
//! [`STAGED`] a plain `return` fails the transaction instead (it is rolled
//! back). `fail`'s counters compose them: `3*off->return(kill)` lets the
//! point pass three times, then kills.
//!
//! | point | where |
//! |---|---|
//! | [`STAGED`] | an event row is written in a handler's transaction, not yet committed |
//! | [`BEFORE_PUBLISH`] | the relay holds committed, unpublished rows |
//! | `consumer.<durable>.before_ack` | a consumer's batch is committed, not yet acked |
//! | [`BEFORE_ANSWER_KEPT`] | a keyed request is answered, its answer not yet kept |

use anyhow::Context as _;

/// An event is staged in a transaction that has not committed.
pub const STAGED: &str = "outbox.staged";
/// A keyed request's handler has answered (its transaction committed);
/// the answer is kept for replays next.
pub const BEFORE_ANSWER_KEPT: &str = "idempotency.before_answer_kept";
/// The relay has read committed rows and publishes them next.
pub const BEFORE_PUBLISH: &str = "relay.before_publish";

/// The point of consumer `durable` between its commit and its acks.
pub fn before_ack(durable: &str) -> String {
    format!("consumer.{durable}.before_ack")
}

/// Arms the points named in `FAILPOINTS`, if set (service start).
pub fn from_env() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(());
    };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, actions) = entry
            .split_once('=')
            .with_context(|| format!("FAILPOINTS: {entry:?} is not name=actions"))?;
        fail::cfg(name.trim(), actions.trim())
            .map_err(|e| anyhow::anyhow!("FAILPOINTS: {name}: {e}"))?;
        tracing::warn!(
            point = name.trim(),
            actions = actions.trim(),
            "fault point armed"
        );
    }
    Ok(())
}

/// Whether a point's `return` argument asks for the process to die.
pub fn kills(argument: Option<&str>) -> bool {
    argument == Some("kill")
}

/// Kills this process with SIGKILL, as a crash would: nothing after this
/// point runs, nothing is flushed.
pub fn die(point: &str) -> ! {
    eprintln!("fault point {point}: SIGKILL");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    std::process::abort()
}

/// The error a [`STAGED`] point returns when it does not kill.
pub fn staged_failure(argument: Option<String>) -> sea_orm::DbErr {
    if kills(argument.as_deref()) {
        die(STAGED);
    }
    sea_orm::DbErr::Custom(format!("fault point {STAGED}"))
}
