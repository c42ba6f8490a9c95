//! The read API's query parameters: each known one given at most once
//! (`filter` and `step` any number of times), and what every read endpoint
//! takes — `site`, `from`, `to`, `include_bots`, `filter`, `format`.

use std::collections::HashMap;

use crate::error::Error;
use crate::read::{Filter, ReadQuery};

/// A range without `from` covers this much before `to`.
pub(super) const DEFAULT_RANGE_MS: u64 = 7 * 86_400_000;
/// The longest range: about three years of daily buckets.
const MAX_RANGE_MS: u64 = 1100 * 86_400_000;

/// Query parameters.
pub(super) struct Params {
    one: HashMap<String, String>,
    many: HashMap<String, Vec<String>>,
}

/// How a table answer is written: `format=json` (the default) or `csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Csv,
}

impl Params {
    /// The parameters of `raw`: each of `known` at most once, each of
    /// `repeatable` any number of times, nothing else.
    pub(super) fn parse(
        raw: Option<&str>,
        known: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, Error> {
        let mut one = HashMap::new();
        let mut many: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if repeatable.contains(&key.as_ref()) {
                many.entry(key.into_owned())
                    .or_default()
                    .push(value.into_owned());
                continue;
            }
            if !known.contains(&key.as_ref()) {
                let all: Vec<&str> = known.iter().chain(repeatable).copied().collect();
                return Err(Error::InvalidQuery(format!(
                    "unknown parameter {key:?}; known: {}",
                    all.join(", ")
                )));
            }
            if one.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(Error::InvalidQuery(format!("{key} is given twice")));
            }
        }
        Ok(Params { one, many })
    }

    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.one.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// Every value of a repeatable parameter, in the order given.
    pub(super) fn all(&self, key: &str) -> &[String] {
        self.many.get(key).map_or(&[], Vec::as_slice)
    }

    /// A non-negative integer no larger than `i64::MAX`: every number the
    /// stores take is a signed 64-bit integer, so a larger one is the
    /// client's mistake (400), not the store's (503).
    pub(super) fn number(&self, key: &str) -> Result<Option<u64>, Error> {
        self.text(key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| i64::try_from(*n).is_ok())
                    .ok_or_else(|| {
                        Error::InvalidQuery(format!(
                            "{key} must be a non-negative integer up to {}, got {v:?}",
                            i64::MAX
                        ))
                    })
            })
            .transpose()
    }

    /// `limit`: `default` when not given, else 1 to `max`.
    pub(super) fn limit(&self, default: usize, max: usize) -> Result<usize, Error> {
        match self.number("limit") {
            Ok(None) => Ok(default),
            Ok(Some(n)) if (1..=max as u64).contains(&n) => Ok(usize::try_from(n).unwrap_or(max)),
            _ => Err(Error::InvalidQuery(format!("limit must be 1 to {max}"))),
        }
    }

    pub(super) fn flag(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.text(key).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(Error::InvalidQuery(format!(
                "{key} must be true or false, got {v:?}"
            ))),
        }
    }

    /// `format`: `json` (default) or `csv`.
    pub(super) fn format(&self) -> Result<Format, Error> {
        match self.text("format").as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(v) => Err(Error::InvalidQuery(format!(
                "format must be json or csv, got {v:?}"
            ))),
        }
    }

    /// Every `filter=dimension:value`.
    pub(super) fn filters(&self) -> Result<Vec<Filter>, Error> {
        self.all("filter")
            .iter()
            .map(|f| Filter::parse(f).map_err(Error::InvalidQuery))
            .collect()
    }

    /// `from` and `to`, each optional, `from` before `to` when both are
    /// given.
    pub(super) fn optional_range(&self) -> Result<(Option<u64>, Option<u64>), Error> {
        let (from, to) = (self.number("from")?, self.number("to")?);
        match (from, to) {
            (Some(from), Some(to)) if from >= to => Err(Error::InvalidQuery(
                "from must be before to (epoch milliseconds, to exclusive)".to_owned(),
            )),
            _ => Ok((from, to)),
        }
    }

    /// `[from, to)`: `to` defaults to `now`, `from` to seven days before
    /// `to`; at most 1100 days.
    pub(super) fn range(&self, now: u64) -> Result<(u64, u64), Error> {
        let (from, to) = self.optional_range()?;
        let to = to.unwrap_or(now);
        let from = from.unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_MS));
        if from >= to {
            return Err(Error::InvalidQuery(
                "from must be before to (epoch milliseconds, to exclusive)".to_owned(),
            ));
        }
        if to - from > MAX_RANGE_MS {
            return Err(Error::InvalidQuery(
                "the range may span at most 1100 days".to_owned(),
            ));
        }
        Ok((from, to))
    }

    /// What every read endpoint takes: `site`, the [`range`](Self::range),
    /// `include_bots` (default false) and the filters.
    pub(super) fn read_query(&self, now: u64) -> Result<ReadQuery, Error> {
        let (from, to) = self.range(now)?;
        Ok(ReadQuery {
            site: self.text("site"),
            from,
            to,
            include_bots: self.flag("include_bots")?.unwrap_or(false),
            filters: self.filters()?,
        })
    }
}

/// The parameters of a [`ReadQuery`], known to every read endpoint.
pub(super) const READ_PARAMS: [&str; 5] = ["site", "from", "to", "include_bots", "format"];

/// `known` with [`READ_PARAMS`].
pub(super) fn with_read_params(known: &[&'static str]) -> Vec<&'static str> {
    READ_PARAMS.iter().chain(known).copied().collect()
}
