//! The registry's schema, one migration per table, run at start-up.

use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = renkei_bus::migrations::all();
        // The Idempotency-Keys of its POST routes.
        all.extend(renkei_web::idempotency::migrations());
        all.push(Box::new(CreateOrganizations));
        all.push(Box::new(CreateSystems));
        all.push(Box::new(CreateLinks));
        // The audit record: its log and the chain head every append locks.
        all.extend(renkei_audit::store::migrations());
        all
    }
}

pub struct CreateOrganizations;
impl MigrationName for CreateOrganizations {
    fn name(&self) -> &str {
        "m20261125_000101_create_organizations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOrganizations {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("organizations")
                    .if_not_exists()
                    .col(ColumnDef::new("id").uuid().not_null().primary_key())
                    .col(ColumnDef::new("name").string().not_null().unique_key())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("competent_org_id").uuid().null())
                    .col(
                        ColumnDef::new("created_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("organizations", "competent_org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("organizations").to_owned())
            .await
    }
}

pub struct CreateSystems;
impl MigrationName for CreateSystems {
    fn name(&self) -> &str {
        "m20261125_000102_create_systems"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSystems {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("systems")
                    .if_not_exists()
                    .col(ColumnDef::new("id").uuid().not_null().primary_key())
                    .col(ColumnDef::new("name").string().not_null())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("owner_org_id").uuid().not_null())
                    .col(ColumnDef::new("platform_id").uuid().not_null())
                    .col(ColumnDef::new("confidentiality").small_integer().not_null())
                    .col(ColumnDef::new("integrity").small_integer().not_null())
                    .col(ColumnDef::new("availability").small_integer().not_null())
                    .col(ColumnDef::new("description").text().not_null())
                    .col(ColumnDef::new("lifecycle").string().not_null())
                    .col(
                        ColumnDef::new("created_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new("updated_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("systems", "owner_org_id")
                            .to("organizations", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("systems", "platform_id")
                            .to("systems", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("systems_platform", "platform_id"),
            ("systems_owner", "owner_org_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table("systems")
                        .col(col)
                        .col("id")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("systems").to_owned())
            .await
    }
}

pub struct CreateLinks;
impl MigrationName for CreateLinks {
    fn name(&self) -> &str {
        "m20261125_000103_create_links"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLinks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("links")
                    .if_not_exists()
                    .col(ColumnDef::new("id").uuid().not_null().primary_key())
                    .col(ColumnDef::new("platform_id").uuid().not_null())
                    .col(ColumnDef::new("from_system_id").uuid().not_null())
                    .col(ColumnDef::new("to_system_id").uuid().not_null())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("propagates").integer().not_null())
                    .col(
                        ColumnDef::new("created_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("links", "from_system_id")
                            .to("systems", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("links", "to_system_id")
                            .to("systems", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("links_unique_edge")
                    .table("links")
                    .col("from_system_id")
                    .col("to_system_id")
                    .col("kind")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("links_platform")
                    .table("links")
                    .col("platform_id")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("links").to_owned())
            .await
    }
}
