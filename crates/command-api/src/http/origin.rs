//! Requests a web browser makes on behalf of a page of another site: refused
//! before they reach a handler (403, the seed's error body).
//!
//! Two checks, after the usual defences of a service that moves money
//! (OWASP's cross-site request forgery cheat sheet: verify the origin with
//! standard headers; and the DNS-rebinding advice for services on loopback):
//! - **Origin.** A command (any method but GET, HEAD and OPTIONS) that carries
//!   an `Origin` header must come from this server's own origin: its host and
//!   port equal the request's `Host`. Browsers send `Origin` with every
//!   cross-origin request that is not a GET (a form, a `fetch` in `no-cors`
//!   mode, with or without a body or a `Content-Type`), and a page cannot
//!   forge it; clients that are not browsers send none and are not affected.
//!   The API's own documentation page (same origin) still works, and so do
//!   the origins an operator allows (`ALLOWED_ORIGINS`: a web app served
//!   from another origin, or behind a proxy that rewrites `Host`; h143 F1).
//! - **Host, when open by default.** Without authentication command-api
//!   listens on loopback only ([`crate::access`]); a page whose own host name
//!   an attacker pointed at 127.0.0.1 (DNS rebinding) is then same-origin for
//!   the browser, so the `Host` it sends must be a loopback name (`localhost`,
//!   an IPv4 or IPv6 loopback address), else the request is refused. `Host`
//!   is one of the headers a page cannot set, and one a browser always sends:
//!   a request that names no host (HTTP/1.0 without `Host`, which HTTP/1.1's
//!   parser already refuses) is no browser's, so it is served.

use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HOST, ORIGIN};
use actix_web::http::Method;
use futures::future::LocalBoxFuture;

use super::ApiError;
use crate::access::is_loopback;

/// Which requests [`guard`] lets through.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// True when open by default: only loopback `Host` names are served.
    pub loopback_hosts_only: bool,
    /// Origins whose commands are served besides this server's own, each
    /// `scheme://host[:port]` in lower case ([`allowed_origin`]).
    pub allowed_origins: Arc<[String]>,
}

/// An origin of `ALLOWED_ORIGINS`, written exactly as a browser writes it
/// in `Origin` (the WHATWG URL standard's serialization of an origin, by
/// the `url` crate): `http` or `https`, `://`, the host (an IDN in its
/// `xn--` form, IPv6 compressed in brackets) and the port unless it is the
/// scheme's default; nothing after it, not even `/`. A value written
/// otherwise could never match (h144 F4: `:443`, `äpp`, `*.`, a query were
/// taken and matched nothing), so it stops the start, naming the spelling
/// a browser would send when there is one. Returned in lower case.
///
/// # Errors
/// The rule, for clap to print beside the value.
pub fn allowed_origin(raw: &str) -> Result<String, String> {
    const RULE: &str = "an origin is http:// or https://, a host and a port unless it is the \
                        scheme's default, nothing after it (no path, not even /), as a \
                        browser's Origin header writes it";
    let parsed = url::Url::parse(raw).map_err(|error| format!("{RULE} ({error})"))?;
    let origin = parsed.origin();
    let written = origin.ascii_serialization();
    // A host name of letters, digits, `-`, `_` and `.` (what a browser can
    // load a page from, a compose service's `web_app` too, h145 F3; not a
    // wildcard), or an IP address.
    let host_name = match parsed.host() {
        Some(url::Host::Domain(name)) => name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        None => false,
    };
    if !matches!(parsed.scheme(), "http" | "https") || !host_name {
        return Err(RULE.into());
    }
    if let Some(port) = parsed.port().filter(|port| refused_by_browsers(*port)) {
        return Err(format!(
            "{RULE}: no browser loads a page from port {port} (0, or a bad port of the Fetch \
             Standard)"
        ));
    }
    // The serialization has no user, path, query or fragment, and no
    // default port: a value with any of them differs from it.
    if written != raw.to_ascii_lowercase() {
        return Err(format!("{RULE}: a browser writes this one {written}"));
    }
    Ok(written)
}

/// The ports a browser never fetches a page from, so never sends in
/// `Origin` (h145): 0, and the "bad ports" of the WHATWG Fetch Standard
/// (section "Port blocking", as of its 2024 addition of 4190 and 6679).
fn refused_by_browsers(port: u16) -> bool {
    const FETCH_BAD_PORTS: [u16; 82] = [
        1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
        102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389,
        427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
        989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665,
        6666, 6667, 6668, 6669, 6679, 6697, 10080,
    ];
    port == 0 || FETCH_BAD_PORTS.contains(&port)
}

/// Refuses a request the policy does not let through, else passes it on.
pub fn guard<S>(
    request: ServiceRequest,
    service: &S,
    policy: &OriginPolicy,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    match admit(&request, policy) {
        Ok(()) => Box::pin(service.call(request)),
        Err(refusal) => Box::pin(async move { Ok(request.error_response(refusal)) }),
    }
}

fn admit(request: &ServiceRequest, policy: &OriginPolicy) -> Result<(), ApiError> {
    let host = request_host(request);
    if let Some(refused) = host
        .as_deref()
        .filter(|host| policy.loopback_hosts_only && !names_loopback(host))
    {
        return Err(ApiError::Forbidden(format!(
            "Host {refused} is refused: without authentication this server answers only to a \
             loopback name or address (localhost, 127.0.0.0/8, [::1])"
        )));
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut origins = request.headers().get_all(ORIGIN);
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if safe {
        return Ok(());
    }
    if origins.next().is_some() {
        return Err(ApiError::Forbidden(
            "Cross-origin request refused: several Origin headers".into(),
        ));
    }
    let origin = origin.to_str().unwrap_or("(not text)");
    let same = origin_authority(origin)
        .zip(host.as_deref())
        .is_some_and(|(origin, host)| origin.eq_ignore_ascii_case(host));
    let allowed = || {
        policy
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    };
    if same || allowed() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "Cross-origin request refused: Origin {origin} is not this server, nor one it \
             allows"
        )))
    }
}

/// The host the client asked for: the request target's authority when it has
/// one (an absolute-form target, or HTTP/2), which RFC 9112 §3.2.2 says a
/// server uses instead of `Host`; else the `Host` header, its bytes that are
/// not text replaced (so such a host names no loopback host and no origin);
/// `None` when the request names none.
fn request_host(request: &ServiceRequest) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|authority| authority.to_string())
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
}

/// `host[:port]` of an origin `scheme://host[:port]`; `None` for `null` and
/// anything else that is not such an origin. `https` as well as `http`: behind
/// a proxy that ends TLS, a browser's own origin is `https://` while the
/// server sees plain HTTP with the same `Host`.
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, authority) = origin.split_once("://")?;
    let plain = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    (plain && !authority.is_empty() && !authority.contains('/')).then_some(authority)
}

/// Whether a `Host` value (`name[:port]`, `[v6][:port]`) names a loopback host:
/// `localhost` or a loopback address (any of 127.0.0.0/8, `::1` in any
/// spelling). Anything after the name but a `:port` (0 to 65535, or empty as
/// RFC 3986 allows) is not: a path, userinfo, a port out of range.
fn names_loopback(host: &str) -> bool {
    let (name, rest) = match host.strip_prefix('[') {
        // An IP literal without its closing bracket is no host (h152 F4).
        Some(bracketed) => match bracketed.split_once(']') {
            Some(literal) => literal,
            None => return false,
        },
        None => host.rsplit_once(':').unwrap_or((host, "")),
    };
    let port = rest.strip_prefix(':').unwrap_or(rest);
    let port_ok = port.is_empty()
        || (port.bytes().all(|byte| byte.is_ascii_digit()) && port.parse::<u16>().is_ok());
    port_ok && is_loopback(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_names_of_this_machine_with_any_port() {
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]:3000",
            "[::1]",
            "127.0.0.2",
            "[0:0:0:0:0:0:0:1]:65535",
            "localhost:",
        ] {
            assert!(names_loopback(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:3000",
            "10.0.0.1:3000",
            "localhost.attacker.example",
            "[::2]:1",
            "",
            "localhost:3750/evil",
            "localhost:x@evil",
            "[::1]/evil",
            "[::1",
            "[::1:3000",
            "[127.0.0.1",
            "localhost:99999",
            "[::1]:65536",
        ] {
            assert!(!names_loopback(host), "{host}");
        }
    }

    #[test]
    fn an_allowed_origin_is_written_as_a_browser_sends_it() {
        for (raw, kept) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTP://LocalHost:5173", "http://localhost:5173"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            (
                "https://xn--pp-uia.example.com",
                "https://xn--pp-uia.example.com",
            ),
            ("http://web_app:8080", "http://web_app:8080"),
            ("http://localhost:6001", "http://localhost:6001"),
        ] {
            assert_eq!(allowed_origin(raw).as_deref(), Ok(kept), "{raw}");
        }
        for refused in [
            "",
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app .example.com",
            "ftp://app.example.com",
            "https://app.example.com:443",
            "http://app.example.com:80",
            "https://app.example.com:",
            "https://app.example.com?x=1",
            "https://app.example.com#f",
            "https://app.example.com:99999",
            "https://*.example.com",
            "https://[0:0::1]:8080",
            "https://[::1",
            "http://localhost:0",
            "http://localhost:6000",
            "https://app.example.com:10080",
        ] {
            assert!(allowed_origin(refused).is_err(), "{refused}");
        }
        let refused = allowed_origin("https://äpp.example.com").expect_err("not as sent");
        assert!(
            refused.ends_with("a browser writes this one https://xn--pp-uia.example.com"),
            "{refused}"
        );
    }

    #[test]
    fn an_origin_is_a_web_scheme_and_an_authority() {
        assert_eq!(
            origin_authority("http://localhost:3000"),
            Some("localhost:3000")
        );
        assert_eq!(origin_authority("HTTPS://Example.com"), Some("Example.com"));
        assert_eq!(origin_authority("null"), None);
        assert_eq!(origin_authority("file://"), None);
        assert_eq!(origin_authority("http://a.example/path"), None);
    }
}
