//! Schema version 8: a site's flat rows read in [`WAYS`] key ranges side
//! by side, so that `FINAL` uses more than one core.
//!
//! ClickHouse 18.16 merges a `FINAL` read on one thread, and every read of
//! the sessions takes the site's flat rows `FINAL` ([`sessions_read_sql`]).
//! Versions of one session share its key `(site, session_id)`, so the
//! site's rows cut into disjoint `session_id` ranges can each be read
//! `FINAL` on its own, in branches of one `UNION ALL` that ClickHouse runs
//! in parallel, and every session is still read once, in its newest
//! version. The reads that are one statement over a range of visits take
//! it ([`Pick::in_ranges`]: breakdowns, timeseries, funnels, profiles);
//! `/v1/stats` (five statements side by side already), the sessions list
//! and realtime do not: measured through the API at 1.07 M visits on this
//! 2-core machine, ranges made breakdowns about 1.25–1.3× faster (by
//! page 1.5×), the timeseries 1.2× and profiles 1.3–1.4×, and the others
//! slower (BENCHMARKS.md).
//!
//! Where to cut is `flat_splits`: per site, the prefixes of the
//! `session_id`s that cut a sample of its flat rows (those whose id hashes
//! to 0 modulo [`SAMPLE`]) into [`WAYS`] equal parts, written by a
//! compaction at most every [`SPLIT_EVERY`]. The cuts only decide how
//! evenly the work is shared, never which rows are read: whatever they are
//! (none yet, stale, from another collector), the ranges `< b1`,
//! `[b1, b2)`, …, `>= bN` hold every key exactly once, since the bounds
//! are sorted (prefixes of sorted ids are sorted too), or all `''` when
//! the site has none: then the last range holds every key.
//!
//! [`sessions_read_sql`]: super::flat::sessions_read_sql
//! [`Pick::in_ranges`]: super::reports::Pick::in_ranges

use std::time::Duration;

use super::reports::literal;
use super::schema::Statement;

/// How many key ranges a site's flat rows are read in. More than the
/// server's cores gains nothing (four measured as fast as two here, on 2
/// cores); an empty range costs nothing.
pub(crate) const WAYS: usize = 4;

/// One flat row in this many (by the hash of its session id) is sampled
/// for the cuts.
const SAMPLE: u32 = 64;

/// A cut is the first this many bytes of a sampled session id: a bound
/// between ids as good as the id itself (for a UUIDv7, the SDK's, a point
/// in time to about a minute), and no session's id, so the table holds
/// nothing an erasure would have to delete.
const CUT_BYTES: usize = 8;

/// How often a collector's compaction writes the cuts anew.
pub(super) const SPLIT_EVERY: Duration = Duration::from_secs(600);

/// The step of schema version 8: `flat_splits`, the newest cuts of each
/// site winning as parts merge (reads take the newest anyway).
pub(super) fn split_schema(db: &str) -> Vec<Statement> {
    vec![Statement::Sql(format!(
        "CREATE TABLE IF NOT EXISTS {db}.flat_splits \
         (site String, ways UInt8, computed_at DateTime, bounds Array(String)) \
         ENGINE = ReplacingMergeTree(computed_at) ORDER BY (site, ways)"
    ))]
}

/// Writes every site's cuts: the sampled session ids in order, and the
/// `WAYS - 1` of them at `1/WAYS`, `2/WAYS`, … of the way (sorted, as
/// their places are).
pub(crate) fn write_splits_sql(db: &str) -> String {
    // No lambda: 18.16's `arrayMap` cannot see `ids`.
    let cuts: Vec<String> = (1..WAYS)
        .map(|i| format!("substring(ids[intDiv({i} * length(ids), {WAYS}) + 1], 1, {CUT_BYTES})"))
        .collect();
    format!(
        "INSERT INTO {db}.flat_splits SELECT site, {WAYS}, now(), [{}] \
         FROM (SELECT site, arraySort(groupArray(session_id)) AS ids \
         FROM {db}.sessions_flat WHERE cityHash64(session_id) % {SAMPLE} = 0 GROUP BY site)",
        cuts.join(", ")
    )
}

/// The `i`-th cut (1-based) of `site`, as a scalar subquery (which
/// ClickHouse runs first, so that the key condition it is in selects a
/// range of the primary key): `''` when the site has no cuts yet.
fn bound(db: &str, site: &str, i: usize) -> String {
    format!(
        "(SELECT if(length(b) = {}, b[{i}], '') FROM (SELECT argMax(bounds, computed_at) AS b \
         FROM {db}.flat_splits WHERE site = {} AND ways = {WAYS}))",
        WAYS - 1,
        literal(site)
    )
}

/// The conditions on `session_id` of the [`WAYS`] ranges of `site`'s
/// flat rows, in key order: together they hold every id once.
pub(crate) fn ranges(db: &str, site: &str) -> Vec<String> {
    (0..WAYS)
        .map(|way| {
            let from = (way > 0).then(|| format!("session_id >= {}", bound(db, site, way)));
            let to = (way + 1 < WAYS).then(|| format!("session_id < {}", bound(db, site, way + 1)));
            from.into_iter().chain(to).collect::<Vec<_>>().join(" AND ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_hold_every_key_once_in_order() {
        let ranges = ranges("db", "shop");
        assert_eq!(ranges.len(), WAYS);
        assert!(ranges[0].starts_with("session_id < (SELECT"));
        assert!(!ranges[0].contains(">="));
        assert!(ranges[WAYS - 1].starts_with("session_id >= (SELECT"));
        assert!(!ranges[WAYS - 1].contains(" < "));
        for (way, range) in ranges.iter().enumerate().skip(1).take(WAYS - 2) {
            // From the cut before, to the next.
            assert!(range.contains(&format!("b[{way}]")), "{range}");
            assert!(range.contains(&format!("b[{}]", way + 1)), "{range}");
        }
        assert!(ranges[0].contains("site = 'shop' AND ways = 4"));
    }
}
