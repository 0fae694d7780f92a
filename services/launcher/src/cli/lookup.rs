//! `renkei id`: the id of an organisation or a system by its exact name,
//! for shell variables (`A=$(renkei id org "Agency A")`).

use super::{Client, output};

#[derive(clap::Subcommand, Debug)]
pub enum IdCommand {
    /// An organisation's id.
    Org { name: String },
    /// A platform's or linked system's id.
    System { name: String },
}

pub async fn run(client: &Client, command: IdCommand) -> anyhow::Result<()> {
    let (path, what, name) = match &command {
        IdCommand::Org { name } => ("/v1/organizations", "organisation", name),
        IdCommand::System { name } => ("/v1/systems", "system", name),
    };
    let found: Vec<String> = client
        .list_all(path)
        .await?
        .iter()
        .filter(|v| v["name"].as_str() == Some(name.as_str()))
        .map(super::id_of)
        .collect();
    match found.as_slice() {
        [one] => {
            output::line(one);
            Ok(())
        }
        [] => anyhow::bail!("no {what} named `{name}` that this token can see"),
        many => anyhow::bail!(
            "{} {what}s are named `{name}`: {}; use the id",
            many.len(),
            many.join(", ")
        ),
    }
}
