//! The read API's model, the same for every store: the questions
//! ([`ReadQuery`] and a query per endpoint, with [`Dimension`]s and
//! [`Filter`]s), the answers ([`Metrics`], [`Breakdown`], [`Timeseries`],
//! [`Realtime`], [`Funnel`], [`Profile`]), the keys every store derives
//! from URLs ([`page_path`], [`Landing`]) and the CSV form of the tables.
//!
//! A store answers through [`SessionReader`](crate::SessionReader); one
//! that cannot answer a question yet says so with
//! [`StoreError::NotSupported`](crate::StoreError::NotSupported).

pub use self::answer::{
    ratio, Breakdown, BreakdownRow, Counts, Funnel, FunnelStepCount, Metrics, PageVisitors,
    PreviousPeriod, Profile, ProfileTotals, Realtime, Timeseries, TimeseriesBucket,
};
pub use self::keys::{page_path, Landing};
pub use self::query::{
    BreakdownQuery, Dimension, Filter, FunnelQuery, FunnelStep, Person, ProfileQuery, ReadQuery,
    RealtimeQuery, TimeseriesQuery, MAX_FUNNEL_STEPS, MIN_FUNNEL_STEPS, REALTIME_WINDOW_MS,
};

mod answer;
pub mod csv;
pub(crate) mod keys;
mod query;
