//! Backup of the SQLite store while events stream in: the copy opens as a
//! store and holds every event acknowledged before the backup began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use waymark_ingest::{
    EventSink, SessionPage, SessionQuery, SessionReader, SqliteStore, DB_FILE_NAME,
};

use crate::support::stores::stored_page_views;

/// Sessions of 20 events each appended while the backup runs.
const SESSIONS: u64 = 200;

/// Appends session after session while [`SqliteStore::backup`] runs; every
/// session acknowledged before the backup began is whole in the copy,
/// which opens as a store, and `waymark backup` does the same from the
/// command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_mid_ingest_holds_every_event_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writing = {
        let (store, acknowledged) = (Arc::clone(&store), Arc::clone(&acknowledged));
        tokio::spawn(async move {
            for s in 0..SESSIONS {
                let mut events = stored_page_views(s, 1, 20, "backup");
                for e in &mut events {
                    e.session_id = format!("s-{s}");
                }
                let outcome = store.append(events).await.unwrap();
                assert_eq!(outcome.inserted, 20);
                acknowledged.store(s + 1, Ordering::SeqCst);
            }
        })
    };
    while acknowledged.load(Ordering::SeqCst) < SESSIONS / 4 {
        assert!(!writing.is_finished(), "the appends stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join(DB_FILE_NAME);
    let before = acknowledged.load(Ordering::SeqCst);
    let (from, to) = (dir.path().to_owned(), copy.clone());
    tokio::task::spawn_blocking(move || SqliteStore::backup(&from, &to))
        .await
        .unwrap()
        .unwrap();
    let during = acknowledged.load(Ordering::SeqCst);
    writing.await.unwrap();
    println!("LIFECYCLE backup: began after {before} sessions acknowledged, ended after {during} of {SESSIONS}");

    // Writing over a file is refused.
    let (from, to) = (dir.path().to_owned(), copy.clone());
    let err = SqliteStore::backup(&from, &to).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");

    let restored = SqliteStore::open(copy_dir.path()).unwrap();
    for s in 0..before {
        let events = restored
            .events_for_session("shop", &format!("s-{s}"))
            .await
            .unwrap();
        assert_eq!(events.len(), 20, "session s-{s} of the copy");
    }
    let page = first_500_sessions(&restored).await;
    assert!(
        page.sessions.len() as u64 >= before,
        "{}",
        page.sessions.len()
    );
    // Never more than was acknowledged once the backup ended, and whole
    // sessions only (each append is one transaction).
    assert!(page.sessions.len() as u64 <= during);
    for session in &page.sessions {
        assert_eq!(session.event_count, 20, "{session:?}");
    }

    // The command line: `waymark --data <dir> backup <file>`.
    let file = copy_dir.path().join("cli.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(dir.path())
        .arg("backup")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cli_dir = tempfile::tempdir().unwrap();
    std::fs::rename(&file, cli_dir.path().join(DB_FILE_NAME)).unwrap();
    let restored = SqliteStore::open(cli_dir.path()).unwrap();
    let page = first_500_sessions(&restored).await;
    assert_eq!(page.sessions.len() as u64, SESSIONS);

    // No store there: a clear error.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(copy_dir.path().join("nothing"))
        .arg("backup")
        .arg(copy_dir.path().join("x.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no store at"), "{stderr}");
}

/// The first 500 sessions of `store` (more than [`SESSIONS`]: all of them).
async fn first_500_sessions(store: &SqliteStore) -> SessionPage {
    store
        .sessions(SessionQuery {
            limit: 500,
            ..SessionQuery::default()
        })
        .await
        .unwrap()
}
