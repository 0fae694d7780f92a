//! The whole product in one process, as `renkei up` runs it — the four
//! services and the web console (`/console`) on one runtime (one NATS connection, one HTTP address), still
//! talking to each other only over NATS. The binary's other commands (the
//! operator CLI, `renkei token`, `renkei audit`) live beside it in
//! `src/main.rs`; [`local_nats`] (a development nats-server when none
//! answers) serves both `renkei up` and [`bench`].

pub mod bench;
pub mod local_nats;

/// Starts every service of the product on `settings`, serving them all
/// under `http.listen`; `name` names the NATS connection.
pub async fn start(
    settings: &renkei_settings::Settings,
    name: &str,
) -> anyhow::Result<renkei_web::Running> {
    use renkei_web::Service as _;
    let mut runtime = renkei_web::Runtime::start(settings, name).await?;
    let registry: renkei_registry::Registry = runtime.start_service(settings).await?;
    let demarcation: renkei_demarcation::Demarcation = runtime.start_service(settings).await?;
    let contacts: renkei_contacts::Contacts = runtime.start_service(settings).await?;
    let emergency: renkei_emergency::Emergency = runtime.start_service(settings).await?;
    let console: renkei_console::Console = runtime.start_service(settings).await?;
    runtime.spawn(
        settings,
        vec![
            registry.module(),
            demarcation.module(),
            contacts.module(),
            emergency.module(),
            console.module(),
        ],
    )
}
