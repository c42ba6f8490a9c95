//! The stores the suite's tests run on: the shared ones of
//! [`support::stores`](crate::support::stores), on databases `hostile_<name>`.

use crate::support::app::TestApp;
pub(crate) use crate::support::stores::on_both_stores;
pub use crate::support::stores::{
    admin_get, clickhouse_app, clickhouse_server, config, sqlite_app, stored_page_views, wait_for,
    NOW, TOKEN,
};

/// [`sqlite_app`] with [`config`].
pub fn sqlite() -> TestApp {
    sqlite_app(config(), |store| store)
}

/// [`clickhouse_app`] with [`config`] on database `hostile_<name>`.
pub async fn clickhouse(name: &str) -> Option<TestApp> {
    let server = clickhouse_server()?;
    Some(clickhouse_app(server, &format!("hostile_{name}"), config(), |store| store).await)
}
