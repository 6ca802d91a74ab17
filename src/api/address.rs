//! The address a request came from. Behind a reverse proxy every request's
//! peer is the proxy, so rate limits, login throttling and protected mode
//! would treat all customers as one client; the proxies named in
//! `security.trusted_proxies` are believed about who they forwarded for.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap};
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` and `Forwarded` headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated addresses or networks: `10.0.0.0/8, 127.0.0.1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let networks = text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither an IP address nor a network such as 10.0.0.0/8"))
        });
        Ok(TrustedProxies(networks.collect::<Result<_, _>>()?))
    }
}

impl TrustedProxies {
    /// Whether `ip` (canonical: a dual-stack listener reports IPv4 peers as
    /// IPv4-mapped IPv6) is a trusted proxy.
    fn trust(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The client of a request: its peer, or, when the peer is a trusted
    /// proxy, the nearest address in the proxies' chain that is not a trusted
    /// proxy itself (addresses further left were written by the client and
    /// prove nothing). None when a trusted proxy does not say who it forwarded
    /// for, or says it in a form that is not an address.
    pub fn client(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = peer(extensions)?;
        if !self.trust(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers);
        let mut nearest = None;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.trust(*ip) => nearest = Some(*ip),
                untrusted => return *untrusted,
            }
        }
        // Every hop is a trusted proxy: the request was made inside their network.
        nearest
    }

    /// The client, unless the request says a proxy passed it on and that
    /// proxy is not trusted: a reverse proxy on this machine would otherwise
    /// make every client on the network a loopback one.
    pub fn unproxied_client(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let untrusted_peer = peer(extensions).is_none_or(|peer| !self.trust(peer));
        if untrusted_peer && (headers.contains_key(header::FORWARDED) || headers.contains_key(FORWARDED_FOR)) {
            return None;
        }
        self.client(headers, extensions)
    }
}

const FORWARDED_FOR: &str = "x-forwarded-for";

fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The hops of `X-Forwarded-For`, or else of `Forwarded`, client first; a
/// hop that is not an address (`unknown`, an obfuscated name) is None.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let (name, hop): (header::HeaderName, fn(&str) -> Option<IpAddr>) = if headers.contains_key(FORWARDED_FOR) {
        (header::HeaderName::from_static(FORWARDED_FOR), hop_address)
    } else {
        (header::FORWARDED, forwarded_element)
    };
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().map_or(vec![None], |v| v.split(',').map(hop).collect()))
        .collect()
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_element(element: &str) -> Option<IpAddr> {
    let value = element.split(';').map(str::trim).find_map(|pair| {
        pair.split_once('=').filter(|(name, _)| name.eq_ignore_ascii_case("for")).map(|(_, value)| value)
    })?;
    hop_address(value.trim_matches('"'))
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn hop_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .or_else(|_| text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&'static str, &str)]) -> (HeaderMap, Extensions) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        (map, extensions)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_trusted_proxy_is_believed_and_a_client_is_not() {
        let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        let forwarded = [("x-forwarded-for", "203.0.113.9, 198.51.100.4")];
        // Through the proxy: the nearest untrusted hop, not what the client wrote further left.
        let (headers, extensions) = request("10.1.2.3", &forwarded);
        assert_eq!(proxies.client(&headers, &extensions), ip("198.51.100.4"));
        // Through two proxies, one of them trusted.
        let (headers, extensions) = request("127.0.0.1", &[("x-forwarded-for", "203.0.113.9, 10.9.9.9")]);
        assert_eq!(proxies.client(&headers, &extensions), ip("203.0.113.9"));
        // Straight from a client that forged the header: its own address.
        let (headers, extensions) = request("192.0.2.7", &forwarded);
        assert_eq!(proxies.client(&headers, &extensions), ip("192.0.2.7"));
        assert_eq!(proxies.unproxied_client(&headers, &extensions), None);
        // A trusted proxy that names no client: unknown, never the proxy's loopback.
        let (headers, extensions) = request("127.0.0.1", &[]);
        assert_eq!(proxies.client(&headers, &extensions), None);
        let (headers, extensions) = request("10.1.2.3", &[("x-forwarded-for", "unknown")]);
        assert_eq!(proxies.client(&headers, &extensions), None);
        // Forwarded (RFC 7239), quoted IPv6 with a port, several headers in order.
        let (headers, extensions) = request(
            "10.1.2.3",
            &[("forwarded", "for=192.0.2.60;proto=http"), ("forwarded", "for=\"[2001:db8::1]:4711\"")],
        );
        assert_eq!(proxies.client(&headers, &extensions), ip("2001:db8::1"));
        // A local client through a trusted local proxy stays local.
        let (headers, extensions) = request("127.0.0.1", &[("x-forwarded-for", "::1")]);
        assert_eq!(proxies.unproxied_client(&headers, &extensions), ip("::1"));
    }

    #[test]
    fn with_no_trusted_proxy_the_peer_is_the_client() {
        let proxies = TrustedProxies::default();
        let (headers, extensions) = request("127.0.0.1", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(proxies.client(&headers, &extensions), ip("127.0.0.1"));
        assert_eq!(proxies.unproxied_client(&headers, &extensions), None);
        let (headers, extensions) = request("127.0.0.1", &[]);
        assert_eq!(proxies.unproxied_client(&headers, &extensions), ip("127.0.0.1"));
    }

    #[test]
    fn a_malformed_list_is_refused_with_the_item() {
        let error = "10.0.0.0/8, proxy.local".parse::<TrustedProxies>().unwrap_err();
        assert!(error.contains("proxy.local"), "{error}");
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let (headers, extensions) = request("::ffff:10.0.0.1", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(proxies.client(&headers, &extensions), ip("203.0.113.9"));
    }
}
