//! The per-client rate limit on `POST /v1/batch` (GCRA, from `governor`).
//!
//! A client is an IPv4 address or an IPv6 /64 network: one subscriber's
//! network is a /64 (RFC 6177, RFC 7421), and a host picks any of its
//! 2^64 addresses at will (privacy extensions rotate them), so keying by
//! whole IPv6 addresses would let one client escape the limit and fill the
//! limiter with entries. IPv4-mapped IPv6 addresses count as IPv4.
//!
//! The keys live in memory only, for as long as they are recent
//! ([`RateLimit::forget_quiet`]); they are never stored.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// A sustained rate and a burst per client ([`client_key`]).
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("addresses", &self.limiter.len())
            .finish()
    }
}

impl RateLimit {
    /// `None` when `per_second` is 0 (no limit). A burst of 0 counts as 1.
    pub fn new(per_second: u32, burst: u32) -> Option<RateLimit> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Some(RateLimit {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// Ok, or the whole seconds to wait before the next batch is let in.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter
            .check_key(&client_key(ip))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }

    /// How many clients the limiter holds state for.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Drops clients whose limit has fully recovered.
    pub fn forget_quiet(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The rate limit's key for `ip`: the IPv4 address, or the IPv6 address's
/// /64 network (its low 64 bits zeroed).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_as_ipv4() {
        let key = |s: &str| client_key(s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(
            key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            key("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
