//! Client IP → country, region, city, through MaxMind-format databases.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{path, Reader};

/// Where an IP address is, as far as the database knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

/// One or more MaxMind-format (`.mmdb`) databases, tried in order; none at
/// all is fine and finds nothing.
///
/// Reads both layouts in use: MaxMind's GeoIP2/GeoLite2 City and Country
/// (`country.iso_code`, `subdivisions[0].names.en`, `city.names.en`) and the
/// flat one of the `ip-location-db` packages, e.g. DB-IP lite city
/// (`country_code`, `state1`, `city`).
#[derive(Default)]
pub struct GeoIp {
    readers: Vec<(PathBuf, Reader<Vec<u8>>)>,
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<_> = self.readers.iter().map(|(p, _)| p).collect();
        f.debug_struct("GeoIp").field("databases", &paths).finish()
    }
}

impl GeoIp {
    /// No database: every lookup is empty.
    pub fn none() -> GeoIp {
        GeoIp::default()
    }

    /// Loads every database into memory.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<GeoIp, String> {
        let mut readers = Vec::with_capacity(paths.len());
        for path in paths {
            let path = path.as_ref();
            let reader = Reader::open_readfile(path).map_err(|err| {
                format!("cannot read the GeoIP database {}: {err}", path.display())
            })?;
            readers.push((path.to_owned(), reader));
        }
        Ok(GeoIp { readers })
    }

    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// The place of `ip`; empty when no database knows it (or on a corrupt
    /// record, which is logged once per lookup, never an error).
    pub fn lookup(&self, ip: IpAddr) -> Place {
        let ip = ip.to_canonical();
        for (path, reader) in &self.readers {
            match lookup_in(reader, ip) {
                Ok(Some(place)) => return place,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(db = %path.display(), error = %err, "geoip lookup failed");
                }
            }
        }
        Place::default()
    }
}

fn lookup_in(
    reader: &Reader<Vec<u8>>,
    ip: IpAddr,
) -> Result<Option<Place>, maxminddb::MaxMindDbError> {
    // A v6 address in a v4-only database is an error, not a miss.
    if ip.is_ipv6() && reader.metadata().ip_version == 4 {
        return Ok(None);
    }
    let found = reader.lookup(ip)?;
    if !found.has_data() {
        return Ok(None);
    }
    let text = |p: &[maxminddb::PathElement<'_>]| found.decode_path::<String>(p).ok().flatten();
    let geoip2_country = text(&path!["country", "iso_code"]);
    let place = if geoip2_country.is_some() || text(&path!["city", "names", "en"]).is_some() {
        Place {
            country: geoip2_country,
            region: text(&path!["subdivisions", 0, "names", "en"]),
            city: text(&path!["city", "names", "en"]),
        }
    } else {
        Place {
            country: text(&path!["country_code"]),
            region: text(&path!["state1"]),
            city: text(&path!["city"]),
        }
    };
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let place = Place {
        country: non_empty(place.country),
        region: non_empty(place.region),
        city: non_empty(place.city),
    };
    Ok((place != Place::default()).then_some(place))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_database_every_lookup_is_empty() {
        let geo = GeoIp::none();
        assert!(geo.is_empty());
        for ip in ["8.8.8.8", "2001:4860:4860::8888", "127.0.0.1"] {
            assert_eq!(
                geo.lookup(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                Place::default()
            );
        }
    }

    #[test]
    fn a_missing_or_broken_database_is_a_clear_error() {
        let err = GeoIp::open(&["/nonexistent/city.mmdb"])
            .err()
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/city.mmdb"), "{err}");
        let dir = std::env::temp_dir().join(format!("waymark-geo-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let bad = dir.join("bad.mmdb");
        let _ = std::fs::write(&bad, b"not a database");
        assert!(GeoIp::open(&[&bad]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
