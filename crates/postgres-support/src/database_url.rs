//! `DATABASE_URL`, checked when the configuration is read: a URL of another
//! database (`mysql://`, `redis://`) or a misspelt scheme (`postgress://`)
//! is refused at once, instead of being taken for a PostgreSQL that does not
//! answer yet and waited for (h157 F6). A URL without the `//` of its
//! authority (`postgres:u:pw@h/db`) is refused too: sqlx reads it as a
//! path, so it connected to 127.0.0.1:5432 without its host, user and
//! password (h161 N2).

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

/// The schemes of a PostgreSQL URL, as libpq takes them.
pub const DATABASE_URL_SCHEMES: [&str; 2] = ["postgres", "postgresql"];

/// Why `DATABASE_URL` is not a PostgreSQL URL. The messages never repeat
/// the URL, which holds the password.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error(
        "DATABASE_URL is not a URL ({source}): give postgres://user:password@host:5432/database \
         (or postgresql://)"
    )]
    NotAUrl {
        #[source]
        source: url::ParseError,
    },
    #[error(
        "DATABASE_URL has the scheme {scheme}: only postgres:// and postgresql:// are accepted \
         (postgres://user:password@host:5432/database)"
    )]
    Scheme { scheme: String },
    #[error(
        "DATABASE_URL has no // after its scheme: give postgres://user:password@host:5432/database \
         (postgres:///database?host=/var/run/postgresql for a local socket)"
    )]
    NoAuthority,
    #[error("DATABASE_URL is not a PostgreSQL URL: {source}")]
    Options {
        #[source]
        source: sqlx::Error,
    },
}

/// The connect options of `raw` when it is a PostgreSQL URL: its scheme is
/// one of [`DATABASE_URL_SCHEMES`] (case aside), followed by `//` (an
/// authority, whose host may be empty: libpq's local socket), and sqlx reads
/// the rest.
/// Nothing is resolved or connected: a host that does not resolve is the
/// connect's transient failure (`PostgresError::Unresolved`).
pub fn check_database_url(raw: &str) -> Result<PgConnectOptions, DatabaseUrlError> {
    let url = url::Url::parse(raw).map_err(|source| DatabaseUrlError::NotAUrl { source })?;
    let scheme = url.scheme();
    if !DATABASE_URL_SCHEMES.contains(&scheme) {
        return Err(DatabaseUrlError::Scheme {
            scheme: scheme.to_owned(),
        });
    }
    if !url.has_authority() {
        return Err(DatabaseUrlError::NoAuthority);
    }
    PgConnectOptions::from_url(&url).map_err(|source| DatabaseUrlError::Options { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_postgresql_scheme_is_taken() {
        for accepted in [
            "postgres://u:p@127.0.0.1:5432/db",
            "postgresql://u:p@db.example/wallex",
            "POSTGRES://u@localhost/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            assert!(check_database_url(accepted).is_ok(), "{accepted}");
        }
        for (refused, scheme) in [
            ("mysql://u:secret@127.0.0.1:3306/db", "mysql"),
            ("redis://u:secret@127.0.0.1:6379", "redis"),
            ("postgress://u:secret@127.0.0.1:5432/db", "postgress"),
        ] {
            let error = check_database_url(refused).expect_err(refused);
            let message = error.to_string();
            assert!(
                matches!(&error, DatabaseUrlError::Scheme { scheme: found } if found == scheme),
                "{message}"
            );
            assert!(message.contains("DATABASE_URL"), "{message}");
            assert!(message.contains("postgres://"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        for refused in ["postgres:u:secret@h/db", "postgres:/x", "postgresql:h"] {
            let error = check_database_url(refused).expect_err(refused);
            let message = error.to_string();
            assert!(
                matches!(error, DatabaseUrlError::NoAuthority),
                "{refused}: {message}"
            );
            assert!(message.contains("DATABASE_URL"), "{message}");
            assert!(message.contains("postgres://"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let not_a_url = check_database_url("localhost:5432/db").map(|_| ());
        assert!(not_a_url.is_err(), "{not_a_url:?}");
        assert!(check_database_url("").is_err());
    }
}
