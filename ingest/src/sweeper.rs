//! The sweeper: closes sessions that have been idle past the timeout by
//! writing their `visit_ended` (reason `idle`, timed at the last activity),
//! unless the SDK already sent one. The event id is derived from the session
//! id, so two sweeps — or two collectors on one store — never write two; a
//! `visit_ended` the SDK sends later replaces the sweeper's (see
//! [`crate::session`]).

use std::future::Future;
use std::time::Duration;

use crate::error::Error;
use crate::state::AppState;

/// Sessions looked at per store call; a sweep pages on, past sessions it
/// could not close, until the store has none left to look at.
const SWEEP_BATCH: usize = 1000;

/// One sweep at the state's clock's `now`: closes every session with no
/// activity for longer than [`Config::session_timeout_minutes`](crate::Config).
/// Returns how many it closed (none when the store is no
/// [`SessionSweeper`](crate::SessionSweeper)).
pub async fn sweep_idle_sessions(state: &AppState) -> Result<usize, Error> {
    // A store that keeps no sessions has none to close.
    let Some(sweeper) = state.sweeper() else {
        return Ok(0);
    };
    let now = state.clock().now_ms();
    let idle_before = now.saturating_sub(state.config().session_timeout_ms());
    let mut total = 0;
    let mut after = None;
    loop {
        let page = sweeper.sweep(now, idle_before, after, SWEEP_BATCH).await?;
        total += page.closed;
        state.metrics().sessions_swept.inc_by(page.closed as u64);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(total)
}

/// Sweeps every [`Config::sweep_interval_seconds`](crate::Config) (the
/// first time at once) until `shutdown` resolves; also runs the retention
/// pass ([`expire_old_sessions`](crate::expire_old_sessions), with
/// `--retention-days`) and lets the rate limiter forget quiet addresses.
pub async fn run_sweeper(state: AppState, shutdown: impl Future<Output = ()>) {
    let every = Duration::from_secs(state.config().sweep_interval_seconds.max(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                match sweep_idle_sessions(&state).await {
                    Ok(0) => {}
                    Ok(closed) => tracing::info!(closed, "closed idle sessions"),
                    Err(err) => tracing::warn!(error = %err, "the sweep failed; retrying next time"),
                }
                crate::lifecycle::retention_tick(&state).await;
                state.forget_quiet_clients();
            }
        }
    }
    tracing::debug!("sweeper stopped");
}
