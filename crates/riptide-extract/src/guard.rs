//! The SSRF guard's address policy: which IP addresses a fetch may connect to.
//!
//! A page fetch must never reach the service's own network: loopback, private and
//! link-local ranges, the cloud metadata endpoint, and the special-purpose ranges that
//! end up there (CGNAT, IPv4 embedded in IPv6, ...). [`AddressGuard`] decides per
//! address; the resolver ([`crate::resolver`]) applies it to every DNS answer and the
//! fetch loop to literal-IP URLs and every redirect target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The cloud metadata endpoints (AWS, GCP, Azure, ...; and AWS's IPv6 one). They are
/// refused even when a broader allow-list block covers them: only an allow entry naming
/// the exact address lets them through.
const METADATA_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// IPv4 blocks that are not publicly routable (RFC 6890 and successors).
const BLOCKED_V4: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8), // "this network"; 0.0.0.0 reaches localhost
    (Ipv4Addr::new(10, 0, 0, 0), 8), // private
    (Ipv4Addr::new(100, 64, 0, 0), 10), // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12), // private
    (Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24), // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24), // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, broadcast
];

/// IPv6 blocks that are not publicly routable. IPv4-mapped (`::ffff:0:0/96`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by the IPv4 address they
/// carry instead, see [`embedded_v4`].
const BLOCKED_V6: [(Ipv6Addr, u8); 10] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32), // Teredo tunnels
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local (incl. fd00:ec2::254)
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

/// Decides whether an address may be connected to: public addresses always, internal
/// ones only when inside an allow-listed network.
#[derive(Debug, Clone, Default)]
pub struct AddressGuard {
    allow: Vec<IpNet>,
}

impl AddressGuard {
    /// A guard that lets `allow` through in addition to public addresses.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether a connection to `addr` is allowed.
    pub fn permits(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        if METADATA_ADDRESSES.contains(&addr) {
            return self
                .allow
                .iter()
                .any(|net| net.prefix_len() == net.max_prefix_len() && net.addr() == addr);
        }
        is_public(addr) || self.allow.iter().any(|net| net.contains(&addr))
    }
}

/// Whether `addr` is a publicly routable address.
pub fn is_public(addr: IpAddr) -> bool {
    match canonical(addr) {
        IpAddr::V4(v4) => !BLOCKED_V4.iter().any(|&(net, len)| in_v4(net, len, v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            !BLOCKED_V6
                .iter()
                .any(|&(net, len)| Ipv6Net::new(net, len).is_ok_and(|n| n.contains(&v6)))
        }
    }
}

fn in_v4(net: Ipv4Addr, len: u8, addr: Ipv4Addr) -> bool {
    Ipv4Net::new(net, len).is_ok_and(|n| n.contains(&addr))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address: connecting to
/// one reaches the other, so both are judged (and allow-listed) alike.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address leads to.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let o = v6.octets();
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(entries: &[&str]) -> Vec<IpNet> {
        entries.iter().map(|e| e.parse().unwrap()).collect()
    }

    #[test]
    fn internal_addresses_are_refused() {
        let guard = AddressGuard::default();
        for addr in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.5",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
            "fec0::1",
            "2001::1",
            "3fff::1",
        ] {
            assert!(!guard.permits(ip(addr)), "{addr} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let guard = AddressGuard::default();
        for addr in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
        ] {
            assert!(guard.permits(ip(addr)), "{addr} must be allowed");
        }
    }

    #[test]
    fn allow_list_opens_exactly_its_networks() {
        let guard = AddressGuard::new(nets(&["127.0.0.1/32", "10.0.0.0/8"]));
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(
            guard.permits(ip("::ffff:127.0.0.1")),
            "mapped form of an allowed v4"
        );
        assert!(guard.permits(ip("10.200.1.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
        assert!(!guard.permits(ip("::1")));
        assert!(!guard.permits(ip("192.168.0.1")));
    }

    #[test]
    fn metadata_needs_an_exact_allow_entry() {
        let broad = AddressGuard::new(nets(&["169.254.0.0/16", "fd00::/8"]));
        assert!(broad.permits(ip("169.254.1.1")));
        assert!(!broad.permits(ip("169.254.169.254")));
        assert!(!broad.permits(ip("fd00:ec2::254")));
        let exact = AddressGuard::new(nets(&["169.254.169.254/32"]));
        assert!(exact.permits(ip("169.254.169.254")));
    }
}
