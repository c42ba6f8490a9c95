//! A fake ClickHouse: just enough of the HTTP interface for the ClickHouse
//! store (the schema statements it runs at open, `SELECT max(version)`, and
//! `INSERT … FORMAT RowBinary` with `decompress=1`), on a loopback port,
//! answering inserts the way the test scripts: refuse those holding a
//! marker with a content error, or the next few with availability errors,
//! as ClickHouse's HTTP interface answers errors (a status, a
//! `Code: N, e.displayText() = DB::Exception: …` body, or only an
//! `X-ClickHouse-Exception-Code` header).
//!
//! The real server cannot be made to refuse the store's own well-formed
//! rows on demand; this one can.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One scripted error answer: status, body and an optional
/// `X-ClickHouse-Exception-Code` header.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub code_header: Option<u32>,
}

impl Answer {
    /// An error as ClickHouse 18.16 writes it: status 500 and the code in
    /// the body.
    pub fn exception(code: u32, text: &str) -> Answer {
        Answer {
            status: 500,
            body: format!(
                "Code: {code}, e.displayText() = DB::Exception: {text}, e.what() = DB::Exception\n"
            ),
            code_header: None,
        }
    }

    /// A status with an empty body (a proxy, an overloaded server).
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            body: String::new(),
            code_header: None,
        }
    }

    /// The code only in the header, as newer servers also send it.
    pub fn header_only(status: u16, code: u32) -> Answer {
        Answer {
            status,
            body: String::new(),
            code_header: Some(code),
        }
    }
}

#[derive(Debug, Default)]
struct Script {
    /// Inserts whose rows contain the marker get this answer.
    poison: Option<(Vec<u8>, Answer)>,
    /// The next inserts get these answers, one each, whatever they hold.
    outage: VecDeque<Answer>,
    /// The rows of every accepted insert, decompressed, one after another.
    accepted: Vec<u8>,
    accepted_inserts: usize,
    /// Every insert refused, with the answer's status.
    refused: Vec<u16>,
}

/// The fake server; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct FakeClickHouse {
    pub port: u16,
    script: Arc<Mutex<Script>>,
}

impl FakeClickHouse {
    /// Starts a server on a free loopback port. Must be called inside a
    /// Tokio runtime.
    pub async fn start() -> FakeClickHouse {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&script));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeClickHouse { port, script }
    }

    /// `clickhouse://127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.port)
    }

    /// Refuses every insert whose rows contain `marker` with `answer`.
    pub fn poison(&self, marker: &str, answer: Answer) {
        self.script.lock().unwrap().poison = Some((marker.as_bytes().to_vec(), answer));
    }

    /// Takes every insert from now on.
    pub fn cure(&self) {
        self.script.lock().unwrap().poison = None;
    }

    /// Answers the next inserts with these errors, one each.
    pub fn outage(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().outage.extend(answers);
    }

    /// Whether an accepted insert held `needle` (an event id, say).
    pub fn accepted(&self, needle: &str) -> bool {
        let script = self.script.lock().unwrap();
        contains(&script.accepted, needle.as_bytes())
    }

    /// Inserts taken so far.
    pub fn accepted_inserts(&self) -> usize {
        self.script.lock().unwrap().accepted_inserts
    }

    /// Inserts refused so far.
    pub fn refused(&self) -> usize {
        self.script.lock().unwrap().refused.len()
    }

    /// Scripted outage answers not yet given.
    pub fn outage_left(&self) -> usize {
        self.script.lock().unwrap().outage.len()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The LZ4 blocks of ClickHouse's compression framing (`decompress=1`):
/// a 16-byte checksum, the method (0x82), the compressed size (with the
/// 9-byte header) and the decompressed size, then the block.
fn decompress(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert_eq!(body[16], 0x82, "an LZ4 block");
        let size = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        let (compressed, decompressed) = (size(17), size(21));
        let block = &body[25..16 + compressed];
        out.extend(lz4_flex::block::decompress(block, decompressed).unwrap());
        body = &body[16 + compressed..];
    }
    out
}

fn reply(answer: &Answer) -> Response {
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.clone(),
    )
        .into_response();
    if let Some(code) = answer.code_header {
        response
            .headers_mut()
            .insert("X-ClickHouse-Exception-Code", code.into());
    }
    response
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(sql) = params.get("query") else {
        // A statement in the body: the schema, or the version it is at.
        let sql = String::from_utf8_lossy(&body);
        if sql.contains("max(version)") {
            // RowBinary UInt32: the schema is current.
            let version = waymark_ingest::clickhouse_sql::latest_version();
            return version.to_le_bytes().to_vec().into_response();
        }
        return StatusCode::OK.into_response();
    };
    assert!(sql.starts_with("INSERT INTO `events`"), "{sql}");
    let rows = if params.get("decompress").map(String::as_str) == Some("1") {
        decompress(&body)
    } else {
        body.to_vec()
    };
    let mut script = script.lock().unwrap();
    let refusal = script.outage.pop_front().or_else(|| {
        script
            .poison
            .as_ref()
            .filter(|(marker, _)| contains(&rows, marker))
            .map(|(_, answer)| answer.clone())
    });
    if let Some(answer) = refusal {
        script.refused.push(answer.status);
        return reply(&answer);
    }
    script.accepted.extend_from_slice(&rows);
    script.accepted_inserts += 1;
    StatusCode::OK.into_response()
}
