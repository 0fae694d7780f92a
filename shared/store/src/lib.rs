//! Database connections, the same way in every service.
//!
//! SQLite (the embedded default) runs in WAL mode with foreign keys on, a busy
//! timeout and full fsync; all writes go through a pool of exactly one
//! connection so concurrent async writers queue instead of meeting "database
//! is locked", while reads use their own pool. PostgreSQL (for scale) uses one
//! pool for both, and each service lives in its own schema, so the four
//! services can share one database without reading each other's tables.

pub mod json;
pub mod schema;

use std::time::Duration;

use anyhow::Context as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

/// The connections of one service.
#[derive(Clone, Debug)]
pub struct Db {
    /// Every write, and every read that must see its own writes.
    pub write: DatabaseConnection,
    /// Reads that can run beside writes (the same pool on PostgreSQL).
    pub read: DatabaseConnection,
}

impl Db {
    /// Connects `service` to `url`, creating its PostgreSQL schema if needed.
    pub async fn connect(url: &str, service: &str, max_connections: u32) -> anyhow::Result<Db> {
        if url.starts_with("sqlite:") {
            let write = Database::connect(sqlite_options(url, 1))
                .await
                .context("database.url: SQLite could not be opened")?;
            let read = Database::connect(sqlite_options(url, max_connections))
                .await
                .context("database.url: SQLite could not be opened for reading")?;
            Ok(Db { write, read })
        } else {
            let schema = schema_name(service);
            let bootstrap = Database::connect(
                ConnectOptions::new(url)
                    .max_connections(1)
                    .sqlx_logging(false)
                    .map_sqlx_postgres_opts(plain_on_loopback)
                    .to_owned(),
            )
            .await
            .context("database.url: PostgreSQL is not reachable")?;
            bootstrap
                .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .with_context(|| format!("schema {schema} could not be created"))?;
            bootstrap.close().await.ok();
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .set_schema_search_path(schema)
                .sqlx_logging(false)
                .map_sqlx_postgres_opts(plain_on_loopback);
            let pool = Database::connect(options)
                .await
                .context("database.url: PostgreSQL is not reachable")?;
            Ok(Db {
                write: pool.clone(),
                read: pool,
            })
        }
    }

    /// Connects and brings the schema up to date with `M`'s migrations.
    pub async fn connect_and_migrate<M: MigratorTrait>(
        url: &str,
        service: &str,
        max_connections: u32,
    ) -> anyhow::Result<Db> {
        let db = Db::connect(url, service, max_connections).await?;
        M::up(&db.write, None)
            .await
            .with_context(|| format!("{service}: migrations failed"))?;
        Ok(db)
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.write.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DatabaseBackend::Postgres
    }

    /// Readiness: both pools answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.read.ping().await.context("database read pool")?;
        self.write.ping().await.context("database write pool")?;
        Ok(())
    }
}

/// Whether `e` is a conflict between concurrent transactions that the
/// database resolved by aborting this one (a PostgreSQL deadlock or
/// serialization failure, a busy SQLite): running it again is correct.
pub fn is_transient(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    [
        "40P01",
        "40001",
        "deadlock detected",
        "could not serialize",
        "database is locked",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Whether `e` says the database cannot be reached now (the server is down,
/// restarting or refusing connections, the connection broke, or no
/// connection could be had from the pool within its acquire timeout),
/// rather than that this statement is wrong: the request may succeed once
/// the database is back, so it is a 503, not a 500.
///
/// sea-orm 2 reports a failed acquire as [`DbErr::ConnectionAcquire`]
/// (sqlx's `PoolTimedOut`/`PoolClosed`), a failed connect as [`DbErr::Conn`],
/// and a connection lost mid-statement as the sqlx error (`Io`, or the
/// server's `57P01 admin_shutdown` and class `08` codes) inside
/// [`DbErr::Exec`] or [`DbErr::Query`].
///
/// [`DbErr::ConnectionAcquire`]: sea_orm::DbErr::ConnectionAcquire
/// [`DbErr::Conn`]: sea_orm::DbErr::Conn
/// [`DbErr::Exec`]: sea_orm::DbErr::Exec
/// [`DbErr::Query`]: sea_orm::DbErr::Query
pub fn is_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unreachable(e)
        }
        _ => false,
    }
}

fn sqlx_unreachable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match e {
        Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed => true,
        Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 57P01..57P03: admin or crash
            // shutdown, cannot connect now (starting or stopping); 53300:
            // too many connections.
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => false,
    }
}

/// The PostgreSQL schema of a service.
pub fn schema_name(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `sslmode=prefer` (the default) to a server on the loopback interface
/// becomes `disable`: the traffic never leaves the host, and sqlx 0.9 over
/// TLS without `TCP_NODELAY` stalls ~40 ms on every multi-segment message
/// (transact-rs/sqlx#4335; measured in BENCHMARKS.md). An explicit
/// `sslmode` (URL or `PGSSLMODE`) other than `prefer` is kept, and so is
/// TLS to any other host.
fn plain_on_loopback(options: PgConnectOptions) -> PgConnectOptions {
    let loopback = match options.get_host() {
        "localhost" => true,
        host => host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    };
    if loopback
        && options.get_socket().is_none()
        && matches!(options.get_ssl_mode(), PgSslMode::Prefer)
    {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    }
}

fn sqlite_options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .create_if_missing(true)
        });
    options
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn mode(url: &str) -> PgSslMode {
        plain_on_loopback(PgConnectOptions::from_str(url).expect("url")).get_ssl_mode()
    }

    #[test]
    fn a_lost_or_refused_connection_is_unreachable_and_a_bad_statement_is_not() {
        use std::sync::Arc;

        use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
        let sqlx = |e| RuntimeErr::SqlxError(Arc::new(e));
        let io = || {
            sea_orm::sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ))
        };
        assert!(is_unreachable(&DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        assert!(is_unreachable(&DbErr::Exec(sqlx(io()))));
        assert!(is_unreachable(&DbErr::Query(sqlx(io()))));
        assert!(is_unreachable(&DbErr::Query(sqlx(
            sea_orm::sqlx::Error::PoolTimedOut
        ))));
        assert!(is_unreachable(&DbErr::Conn(RuntimeErr::Internal(
            "refused".into()
        ))));
        assert!(!is_unreachable(&DbErr::Query(sqlx(
            sea_orm::sqlx::Error::RowNotFound
        ))));
        assert!(!is_unreachable(&DbErr::RecordNotFound("x".into())));
        assert!(!is_unreachable(&DbErr::Custom("bad".into())));
    }

    #[test]
    fn tls_is_left_out_only_for_a_default_connection_to_loopback() {
        assert!(matches!(
            mode("postgres://u@127.0.0.1:5432/db"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@localhost/db"),
            PgSslMode::Disable
        ));
        assert!(matches!(mode("postgres://u@[::1]/db"), PgSslMode::Disable));
        assert!(matches!(
            mode("postgres://u@127.0.0.1/db?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@db.example.go.jp/db"),
            PgSslMode::Prefer
        ));
    }
}
