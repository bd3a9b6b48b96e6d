//! Which addresses a tenant's URI may reach: the SSRF rule. Pure.
//!
//! A vectorizer owner chooses the URIs the worker fetches, so without a
//! rule any tenant could make the worker call the cloud metadata service,
//! the database's own host or other internal services and read the answer
//! back as chunks. Only globally routable addresses are reached, unless the
//! operator names a host with `--uri-allow-host`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `--uri-allow-host HOST[:PORT]`: a host (as written in the URI) the
/// operator lets tenants reach whatever it resolves to; any port unless
/// one is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("--uri-allow-host {s:?}: expected HOST or HOST:PORT");
        // [v6]:port, [v6], v6 without a port, host:port, host.
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad()))
            .transpose()?;
        Ok(AllowedHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host` as the URI gives it (IPv6 without brackets), `port` the
    /// effective one.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

/// Why an address is not reachable by tenants' URIs, if it is not.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private (RFC 1918)",
        _ if ip.is_link_local() => "link-local (169.254.0.0/16, cloud metadata)",
        _ if a == 0 => "unspecified (0.0.0.0/8)",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() || a >= 240 => "reserved (240.0.0.0/4)",
        _ if a == 100 && (64..128).contains(&b) => "shared address space (100.64.0.0/10)",
        _ if a == 192 && b == 0 && c == 0 => "IETF protocol assignments (192.0.0.0/24)",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking (198.18.0.0/15)",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Addresses that carry an IPv4 address are judged by it: mapped
    // (::ffff:a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return refused_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return refused_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if (s[0] & 0xfe00) == 0xfc00 => "unique local (fc00::/7)",
        _ if (s[0] & 0xffc0) == 0xfe80 => "link-local (fe80::/10)",
        _ if (s[0] & 0xffc0) == 0xfec0 => "site-local (fec0::/10)",
        _ if ip.is_multicast() => "multicast",
        // IPv4-compatible (::a.b.c.d, deprecated) and the rest of ::/96.
        _ if s[..6] == [0; 6] => "IPv4-compatible (::/96)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<&'static str> {
        refused(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(r(a).is_some(), "{a} should be refused");
        }
        assert!(r("169.254.169.254").unwrap().contains("metadata"));
    }

    #[test]
    fn public_addresses_are_reachable() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(r(a), None, "{a}");
        }
    }

    #[test]
    fn allowed_hosts_match_host_and_optional_port() {
        let any = AllowedHost::parse("Docs.Internal").unwrap();
        assert!(any.matches("docs.internal", 443) && any.matches("DOCS.internal", 8080));
        let one = AllowedHost::parse("127.0.0.1:8080").unwrap();
        assert!(one.matches("127.0.0.1", 8080) && !one.matches("127.0.0.1", 8081));
        let v6 = AllowedHost::parse("[::1]:9000").unwrap();
        assert!(v6.matches("[::1]", 9000) && !v6.matches("::1", 80));
        assert!(AllowedHost::parse("::1").unwrap().matches("[::1]", 1));
        for bad in ["", ":80", "host:x", "http://host", "a b", "[::1]x"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?}");
        }
    }
}
