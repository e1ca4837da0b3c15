//! `REDIS_URL`, checked when the configuration is read: a value the redis
//! crate's own parser refuses is a bad setting (exit 2), found before the
//! first connection instead of failing the start with exit 1 (h161 N3).

/// Why `REDIS_URL` is no Redis URL. The message never repeats the URL,
/// which may hold a password (nor does the redis crate's parse error).
#[derive(Debug, thiserror::Error)]
#[error(
    "REDIS_URL is not a Redis URL ({source}): give redis://[:password@]host:6379[/db], \
     rediss://… (TLS, where the client is built with it) or unix:///path/to/redis.sock"
)]
pub struct RedisUrlError {
    #[source]
    source: redis::RedisError,
}

/// The connection info of `raw` as the redis crate's own parser reads it
/// (`IntoConnectionInfo`: redis://, rediss://, unix:// and their valkey
/// spellings). Nothing is resolved or connected.
pub fn check_redis_url(raw: &str) -> Result<redis::ConnectionInfo, RedisUrlError> {
    use redis::IntoConnectionInfo;
    raw.into_connection_info()
        .map_err(|source| RedisUrlError { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_url_the_redis_client_takes_is_accepted() {
        for accepted in [
            "redis://127.0.0.1:6379",
            "redis://:pw@redis.example/2",
            "unix:///var/run/redis.sock",
        ] {
            assert!(check_redis_url(accepted).is_ok(), "{accepted}");
        }
        for refused in [
            "",
            "notaurl",
            "http://u:secret@h",
            "redis://:secret@",
            "redis://:secret@h/notadb",
            "rediss://:secret@h:6380",
        ] {
            let message = check_redis_url(refused).expect_err(refused).to_string();
            assert!(message.contains("REDIS_URL"), "{refused}: {message}");
            assert!(message.contains("redis://"), "{refused}: {message}");
            assert!(!message.contains("secret"), "{refused}: {message}");
        }
    }
}
