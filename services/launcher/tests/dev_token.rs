//! `renkei token`: development tokens signed with the data directory's key,
//! and none at all in the production profile.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh data directory, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        let dir = std::env::temp_dir().join(format!("renkei-token-{}", uuid::Uuid::now_v7()));
        DataDir(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `renkei token …` with only the given `RENKEI_*` variables (none of the
/// developer's shell).
fn renkei_token(data_dir: &DataDir, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_renkei"))
        .env_clear()
        .envs(env.iter().copied())
        .arg("token")
        .arg("--data-dir")
        .arg(&data_dir.0)
        .args(args)
        .output()
        .expect("renkei runs")
}

#[test]
fn renkei_token_refuses_in_the_production_profile_and_creates_no_key() {
    let dir = DataDir::new();
    let out = renkei_token(
        &dir,
        &[
            ("RENKEI_PROFILE", "production"),
            (
                "RENKEI_AUTH__OIDC__ISSUER",
                "https://idp.example.go.jp/realms/gov",
            ),
            ("RENKEI_AUTH__OIDC__AUDIENCE", "renkei"),
            (
                "RENKEI_AUTH__OIDC__JWKS_URL",
                "https://idp.example.go.jp/realms/gov/protocol/openid-connect/certs",
            ),
        ],
        &["--role", "admin"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "minted a token in production");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("production profile") && stderr.contains("identity provider"),
        "{stderr}"
    );
    assert!(
        !dir.0.join("dev-signing.key").exists(),
        "the production profile never creates a development key"
    );
}

#[tokio::test]
async fn renkei_token_mints_a_development_token_with_the_data_directorys_key() {
    let dir = DataDir::new();
    let org = uuid::Uuid::now_v7();
    let out = renkei_token(
        &dir,
        &[],
        &[
            "--role",
            "manager",
            "--org",
            &org.to_string(),
            "--sub",
            "dev-1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let key = renkei_web::identity::dev_key("", &dir.0).expect("the key it created");
    let identity = renkei_web::TokenVerifier::hs256(&key)
        .verify(token.trim())
        .await
        .expect("signed with the data directory's key");
    assert_eq!(identity.sub, "dev-1");
    assert_eq!(identity.org, Some(org));
    assert_eq!(identity.roles, vec![renkei_web::Role::Manager]);
}
