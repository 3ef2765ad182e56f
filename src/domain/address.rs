//! Which IP addresses are on the public internet, for the webhook guard: every block of
//! IANA's special-purpose address registries (IPv4 and IPv6, as of 2025) that is not
//! globally reachable is refused, and so is every IPv6 address outside `2000::/3`, the only
//! space IANA has allocated for global unicast. A block marked globally reachable inside a
//! refused one (an anycast service address) is allowed: the most specific block decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One registry entry: a prefix, its length, and the kind of address it is (`None` for a
/// globally reachable block inside a refused one).
type Block<T> = (T, u8, Option<&'static str>);

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    Ipv4Addr::new(a, b, c, d).to_bits()
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16) -> u128 {
    Ipv6Addr::new(a, b, c, d, e, f, g, h).to_bits()
}

const PRIVATE: Option<&str> = Some("a private");
const RESERVED: Option<&str> = Some("a reserved");
const DOCUMENTATION: Option<&str> = Some("a documentation");
const GLOBAL: Option<&str> = None;

/// IANA IPv4 Special-Purpose Address Registry (RFC 6890), plus multicast, which is no
/// webhook's address either.
#[rustfmt::skip]
const V4_BLOCKS: &[Block<u32>] = &[
    (v4(0, 0, 0, 0), 8, Some("an unspecified")),
    (v4(10, 0, 0, 0), 8, PRIVATE),
    (v4(100, 64, 0, 0), 10, Some("a shared (carrier-grade NAT)")),
    (v4(127, 0, 0, 0), 8, Some("a loopback")),
    (v4(169, 254, 0, 0), 16, Some("a link-local")),
    (v4(172, 16, 0, 0), 12, PRIVATE),
    // IETF protocol assignments, DS-Lite, NAT64 discovery; two anycast services are global.
    (v4(192, 0, 0, 0), 24, RESERVED),
    (v4(192, 0, 0, 9), 32, GLOBAL),
    (v4(192, 0, 0, 10), 32, GLOBAL),
    (v4(192, 0, 2, 0), 24, DOCUMENTATION),
    // The deprecated 6to4 relay anycast (RFC 7526).
    (v4(192, 88, 99, 0), 24, RESERVED),
    (v4(192, 168, 0, 0), 16, PRIVATE),
    (v4(198, 18, 0, 0), 15, Some("a benchmarking")),
    (v4(198, 51, 100, 0), 24, DOCUMENTATION),
    (v4(203, 0, 113, 0), 24, DOCUMENTATION),
    (v4(224, 0, 0, 0), 4, Some("a multicast")),
    (v4(240, 0, 0, 0), 4, RESERVED),
    (v4(255, 255, 255, 255), 32, Some("a broadcast")),
];

/// IANA IPv6 Special-Purpose Address Registry (RFC 6890) inside `2000::/3`, and the blocks
/// outside it that deserve their own name in a message. IPv4-mapped and well-known NAT64
/// addresses are judged by the IPv4 address they reach, before this table.
#[rustfmt::skip]
const V6_BLOCKS: &[Block<u128>] = &[
    (v6(0, 0, 0, 0, 0, 0, 0, 0), 128, Some("an unspecified")),
    (v6(0, 0, 0, 0, 0, 0, 0, 1), 128, Some("a loopback")),
    // IPv4-compatible (deprecated) and IPv4-translated (SIIT) addresses.
    (v6(0, 0, 0, 0, 0, 0, 0, 0), 96, RESERVED),
    (v6(0, 0, 0, 0, 0xffff, 0, 0, 0), 96, Some("an IPv4-translated")),
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Some("a local-use NAT64")),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Some("a discard-only")),
    (v6(0x100, 0, 0, 1, 0, 0, 0, 0), 64, Some("a dummy")),
    // IETF protocol assignments (Teredo, benchmarking, ORCHID…) with their global services.
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, RESERVED),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Some("a Teredo")),
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 1), 128, GLOBAL),
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 2), 128, GLOBAL),
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 3), 128, GLOBAL),
    (v6(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, Some("a benchmarking")),
    (v6(0x2001, 3, 0, 0, 0, 0, 0, 0), 32, GLOBAL),
    (v6(0x2001, 4, 0x112, 0, 0, 0, 0, 0), 48, GLOBAL),
    (v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28, GLOBAL),
    (v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0), 28, GLOBAL),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, DOCUMENTATION),
    // 6to4 (deprecated, RFC 7526): reachable only through whatever relay is nearest.
    (v6(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, Some("a 6to4")),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, DOCUMENTATION),
    (v6(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, Some("a segment-routing")),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Some("a private (unique local)")),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Some("a link-local")),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Some("a site-local")),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Some("a multicast")),
];

/// What kind of non-public address this is ("a loopback", "a private"…), or `None` for an
/// address on the public internet.
pub fn internal_kind(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => internal_v6(ip),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    most_specific(V4_BLOCKS, ip.to_bits(), 32).flatten()
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // The same IPv4 address spelled in IPv6 (`::ffff:a.b.c.d`), and the well-known NAT64
    // prefix (globally reachable itself), which reaches the IPv4 address it carries.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let bits = ip.to_bits();
    if bits >> 32 == v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) >> 32 {
        return internal_v4(Ipv4Addr::from_bits(bits as u32));
    }
    match most_specific(V6_BLOCKS, bits, 128) {
        Some(kind) => kind,
        None if bits >> 125 != 0b001 => RESERVED,
        None => None,
    }
}

/// The kind of the longest block of `blocks` holding `address` (`Some(None)` for a global
/// block), or `None` when no block holds it.
fn most_specific<T>(blocks: &[Block<T>], address: T, width: u32) -> Option<Option<&'static str>>
where
    T: Copy + PartialEq + std::ops::Shr<u32, Output = T>,
{
    blocks
        .iter()
        .filter(|(prefix, len, _)| {
            let shift = width - u32::from(*len);
            shift == width || (address >> shift) == (*prefix >> shift)
        })
        .max_by_key(|(_, len, _)| *len)
        .map(|(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<&'static str> {
        internal_kind(ip.parse().unwrap())
    }

    #[test]
    fn every_ipv4_block_that_is_not_globally_reachable_is_refused() {
        for (ip, expected) in [
            ("0.1.2.3", "an unspecified"),
            ("10.20.30.40", "a private"),
            ("100.64.0.1", "a shared (carrier-grade NAT)"),
            ("100.127.255.254", "a shared (carrier-grade NAT)"),
            ("127.0.0.1", "a loopback"),
            ("127.255.255.254", "a loopback"),
            ("169.254.169.254", "a link-local"),
            ("172.16.0.1", "a private"),
            ("172.31.255.255", "a private"),
            ("192.0.0.1", "a reserved"),
            ("192.0.0.8", "a reserved"),
            ("192.0.0.170", "a reserved"),
            ("192.0.0.171", "a reserved"),
            ("192.0.2.1", "a documentation"),
            ("192.88.99.1", "a reserved"),
            ("192.168.1.1", "a private"),
            ("198.18.0.1", "a benchmarking"),
            ("198.19.255.255", "a benchmarking"),
            ("198.51.100.7", "a documentation"),
            ("203.0.113.9", "a documentation"),
            ("224.0.0.1", "a multicast"),
            ("239.255.255.250", "a multicast"),
            ("240.0.0.1", "a reserved"),
            ("255.255.255.254", "a reserved"),
            ("255.255.255.255", "a broadcast"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn globally_reachable_ipv4_blocks_and_public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.1.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.175.48.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_ipv6_block_that_is_not_globally_reachable_is_refused() {
        for (ip, expected) in [
            ("::", "an unspecified"),
            ("::1", "a loopback"),
            ("::7f00:1", "a reserved"),
            ("::808:808", "a reserved"),
            ("::ffff:0:7f00:1", "an IPv4-translated"),
            ("::ffff:0:808:808", "an IPv4-translated"),
            ("64:ff9b:1::7f00:1", "a local-use NAT64"),
            ("64:ff9b:1::808:808", "a local-use NAT64"),
            ("100::1", "a discard-only"),
            ("100:0:0:1::1", "a dummy"),
            ("2001::1", "a Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo"),
            ("2001:2::1", "a benchmarking"),
            ("2001:10::1", "a reserved"),
            ("2001:1::4", "a reserved"),
            ("2001:1ff:ffff::1", "a reserved"),
            ("2001:db8::1", "a documentation"),
            ("2002:808:808::1", "a 6to4"),
            ("2002:7f00:1::", "a 6to4"),
            ("3fff::1", "a documentation"),
            ("3fff:fff::1", "a documentation"),
            ("5f00::1", "a segment-routing"),
            ("fc00::1", "a private (unique local)"),
            ("fd12:3456::1", "a private (unique local)"),
            ("fe80::1", "a link-local"),
            ("febf::1", "a link-local"),
            ("fec0::1", "a site-local"),
            ("ff02::1", "a multicast"),
            // Outside 2000::/3, IANA has allocated nothing for global unicast.
            ("4000::1", "a reserved"),
            ("1::1", "a reserved"),
            ("e000::1", "a reserved"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn globally_reachable_ipv6_blocks_and_public_addresses_are_allowed() {
        for ip in [
            "2606:4700::1111",
            "2a00:1450:4001:82b::200e",
            "2001:1::1",
            "2001:1::2",
            "2001:1::3",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:30::1",
            "2001:200::1",
            "2620:4f:8000::1",
            "3ffe::1",
            "3fff:1000::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv4_addresses_written_in_ipv6_are_judged_by_the_ipv4_address() {
        assert_eq!(kind("::ffff:127.0.0.1"), Some("a loopback"));
        assert_eq!(kind("::ffff:169.254.169.254"), Some("a link-local"));
        assert_eq!(kind("::ffff:8.8.8.8"), None);
        assert_eq!(kind("64:ff9b::a9fe:a9fe"), Some("a link-local"));
        assert_eq!(kind("64:ff9b::7f00:1"), Some("a loopback"));
        assert_eq!(kind("64:ff9b::808:808"), None);
    }
}
