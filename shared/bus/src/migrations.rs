//! Tables the bus needs in every service's database: the outbox and the
//! record of handled events. Each service lists these in its own migrator.

use sea_orm_migration::prelude::*;

/// `outbox`: events staged in the transaction of the change they describe.
pub struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20261125_000001_create_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .if_not_exists()
                    .col(ColumnDef::new("id").uuid().not_null().primary_key())
                    .col(ColumnDef::new("subject").string().not_null())
                    .col(ColumnDef::new("envelope").text().not_null())
                    .col(ColumnDef::new("trace_headers").text().not_null())
                    .col(
                        ColumnDef::new("created_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new("published_at")
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new("attempts").integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        // Only unpublished rows are ever scanned; keep that scan small.
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("outbox").to_owned())
            .await
    }
}

/// `handled_events`: which consumer has applied which event, written in the
/// same transaction as the effect, so a redelivery changes nothing.
pub struct CreateHandledEvents;

impl MigrationName for CreateHandledEvents {
    fn name(&self) -> &str {
        "m20261125_000002_create_handled_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateHandledEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("handled_events")
                    .if_not_exists()
                    .col(ColumnDef::new("consumer").string().not_null())
                    .col(ColumnDef::new("event_id").uuid().not_null())
                    .col(
                        ColumnDef::new("handled_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col("consumer").col("event_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("handled_events").to_owned())
            .await
    }
}

/// The bus's migrations, to be listed first by every service migrator.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateOutbox), Box::new(CreateHandledEvents)]
}
