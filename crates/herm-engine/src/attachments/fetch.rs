//! Fetching an attachment sent as a URL: once, with a size cap and a time limit, and never
//! from a private address. Every name is resolved by a resolver that drops loopback,
//! private, link-local and other non-public addresses, and a URL (or a redirect target)
//! naming such an address directly is refused before any connection, so neither DNS nor a
//! redirect can point herm at its own network.

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How attachments sent as URLs are fetched.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Allow loopback and private addresses (local development and tests only).
    pub allow_private: bool,
    /// The whole fetch, headers and body.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { allow_private: false, timeout: Duration::from_secs(20) }
    }
}

/// An address no attachment may be fetched from: anything but a public unicast address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64: an IPv4 address in disguise
                || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240
}

/// Resolves names and keeps only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether the URL names a private address literally.
fn names_private(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => is_private(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost"),
    }
}

/// The HTTP client attachments are fetched with.
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Self {
        let allow = opts.allow_private;
        let redirects = reqwest::redirect::Policy::custom(move |a| {
            if a.previous().len() >= 5 {
                a.error("too many redirects")
            } else if !allow && names_private(a.url()) {
                a.error("redirected to a private address")
            } else {
                a.follow()
            }
        });
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(redirects)
            .no_proxy()
            .user_agent("herm-attachment-fetch");
        if !allow {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        Self { client: b.build().unwrap_or_default(), opts }
    }

    /// The bytes at `url` and the type the server declared; at most `max` bytes.
    pub async fn get(&self, url: &str, max: usize) -> Result<(Vec<u8>, Option<String>), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("only http(s) URLs are fetched".into());
        }
        if !self.opts.allow_private && names_private(&parsed) {
            return Err("the URL names a private address".into());
        }
        match tokio::time::timeout(self.opts.timeout, self.download(parsed, max)).await {
            Ok(r) => r,
            Err(_) => Err(format!("the download took longer than {} s", self.opts.timeout.as_secs())),
        }
    }

    async fn download(&self, url: reqwest::Url, max: usize) -> Result<(Vec<u8>, Option<String>), String> {
        let resp = self.client.get(url).send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the server answered {}", status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("it is larger than {max} bytes"));
        }
        let declared = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase());
        let mut body = resp.bytes_stream();
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| describe(&e))?;
            if out.len() + chunk.len() > max {
                return Err(format!("it is larger than {max} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out, declared))
    }
}

/// A fetch error without the URL (which may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_redirect() {
        "a redirect was refused".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the download failed".to_owned()
    };
    // The innermost cause says why (a private address, a refused connection).
    let mut source = e.source();
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.push_str(&l);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        let cases = [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("198.18.0.1", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("64:ff9b::7f00:1", true),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("2606:4700::1111", false),
        ];
        for (ip, want) in cases {
            assert_eq!(is_private(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn literal_private_hosts() {
        for (u, want) in [
            ("http://127.0.0.1:8080/a.png", true),
            ("http://[::1]/a", true),
            ("http://localhost/a", true),
            ("http://api.localhost/a", true),
            ("https://example.com/a.png", false),
        ] {
            assert_eq!(names_private(&reqwest::Url::parse(u).unwrap()), want, "{u}");
        }
    }

    #[tokio::test]
    async fn refuses_private_urls_before_connecting() {
        let f = Fetcher::new(FetchOptions::default());
        let e = f.get("http://127.0.0.1:9/x.png", 10).await.unwrap_err();
        assert!(e.contains("private"), "{e}");
        let e = f.get("ftp://example.com/x.png", 10).await.unwrap_err();
        assert!(e.contains("http"), "{e}");
    }
}
