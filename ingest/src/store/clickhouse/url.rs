//! Where the ClickHouse server is: [`ClickHouseUrl`], parsed from
//! `clickhouse://[user[:password]@]host:port/database`.

use std::fmt;
use std::str::FromStr;

/// Where a ClickHouse server's HTTP interface is, and the database to use.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// `http://host:port`.
    pub http: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        write!(f, "{self}")
    }
}

impl fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.http.trim_start_matches("http://");
        match &self.user {
            Some(user) => write!(f, "clickhouse://{user}@{host}/{}", self.database),
            None => write!(f, "clickhouse://{host}/{}", self.database),
        }
    }
}

impl FromStr for ClickHouseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "expected clickhouse://[user[:password]@]host:port/database";
        let url = url::Url::parse(s.trim()).map_err(|e| format!("{e}; {usage}"))?;
        if url.scheme() != "clickhouse" {
            return Err(usage.to_owned());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(usage)?;
        let port = url.port().unwrap_or(8123);
        let database = url.path().trim_matches('/');
        let valid = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let database = if database.is_empty() {
            "waymark"
        } else {
            database
        };
        if !valid(database) {
            return Err(format!(
                "database name {database:?}: letters, digits and `_` only"
            ));
        }
        let decode = |text: &str| {
            url::form_urlencoded::parse(format!("x={text}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(ClickHouseUrl {
            http: format!("http://{host}:{port}"),
            database: database.to_owned(),
            user: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
            password: url.password().map(decode),
        })
    }
}
