//! `ELASTICSEARCH_URL`, checked when the configuration is read by every
//! binary that takes it: an empty value or one that is no URL (`notaurl`)
//! is a bad setting (exit 2), not a search server that does not answer yet
//! and is waited for (h161 N3).

use elasticsearch::http::Url;

/// The schemes of a search server's URL.
pub const SEARCH_URL_SCHEMES: [&str; 2] = ["http", "https"];

/// Why `ELASTICSEARCH_URL` is no search server's URL. The messages never
/// repeat the URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum SearchUrlError {
    #[error(
        "ELASTICSEARCH_URL is not a URL ({source}): give http://host:9200 or https://host:9200"
    )]
    NotAUrl {
        #[source]
        source: url::ParseError,
    },
    #[error(
        "ELASTICSEARCH_URL has the scheme {scheme}: only http:// and https:// are accepted \
         (http://host:9200)"
    )]
    Scheme { scheme: String },
    #[error("ELASTICSEARCH_URL has no host: give http://host:9200 or https://host:9200")]
    NoHost,
}

/// `raw` as a URL when it is one of a search server: its scheme is one of
/// [`SEARCH_URL_SCHEMES`] and it names a host. Nothing is resolved or sent.
pub fn check_search_url(raw: &str) -> Result<Url, SearchUrlError> {
    let url = Url::parse(raw).map_err(|source| SearchUrlError::NotAUrl { source })?;
    if !SEARCH_URL_SCHEMES.contains(&url.scheme()) {
        return Err(SearchUrlError::Scheme {
            scheme: url.scheme().to_owned(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SearchUrlError::NoHost);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_http_url_with_a_host_is_taken() {
        for accepted in [
            "http://localhost:9200",
            "https://u:p@search.example/",
            "HTTP://os:9200/prefix",
        ] {
            assert!(check_search_url(accepted).is_ok(), "{accepted}");
        }
        for refused in [
            "",
            "notaurl",
            "localhost:9200",
            "ftp://u:secret@h",
            "http://",
            "file:///tmp/x",
        ] {
            let message = check_search_url(refused).expect_err(refused).to_string();
            assert!(
                message.contains("ELASTICSEARCH_URL"),
                "{refused}: {message}"
            );
            assert!(message.contains("http://"), "{refused}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
