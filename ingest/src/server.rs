//! Running the collector: store, router, listener, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::{Config, StoreKind};
use crate::error::Error;
use crate::http::{app, AppState};
use crate::store::{SqliteStore, StoreError};

/// Serves the collector on `listener` until `shutdown` resolves.
///
/// Opens the store in [`Config::data_dir`] (creating the directory), serves
/// [`app`], and on shutdown stops accepting connections, lets the requests
/// in flight finish, then waits for the store to commit everything queued.
/// When it returns `Ok`, every acknowledged event is on disk.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = match config.store {
        StoreKind::Sqlite => {
            let data_dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(data_dir))
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))??;
            Arc::new(store)
        }
    };
    tracing::info!(path = %store.path().display(), "opened the sqlite store");

    let state = AppState::new(config, store.clone(), Arc::new(SystemClock));
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;

    // Every connection is closed, so no request is waiting on the store.
    let closing = Arc::clone(&store);
    tokio::task::spawn_blocking(move || closing.close())
        .await
        .map_err(|err| Error::Store(StoreError::Io(std::io::Error::other(err))))?;
    tracing::info!("the store is closed");
    served?;
    Ok(())
}
