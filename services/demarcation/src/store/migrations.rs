//! The demarcation schema, one migration per table, run at start-up.

use renkei_store::schema::{CreateTable, at, at_null, index};
use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = renkei_bus::migrations::all();
        // The Idempotency-Keys of its POST routes.
        all.extend(renkei_web::idempotency::migrations());
        let [organizations, systems] = renkei_bus::registry_copy::tables(
            "m20261126_000202_create_organizations",
            "m20261126_000203_create_systems",
        );
        for table in [
            controls(),
            organizations,
            systems,
            matrix_versions(),
            rule_versions(),
            rule_parties(),
            rule_decisions(),
            reminders(),
        ] {
            all.push(Box::new(table));
        }
        // The audit record: its log and the chain head every append locks.
        all.extend(renkei_audit::store::migrations());
        all
    }
}

fn controls() -> CreateTable {
    CreateTable {
        name: "m20261126_000201_create_controls",
        table: Table::create()
            .table("controls")
            .if_not_exists()
            .col(ColumnDef::new("id").string().not_null().primary_key())
            .col(ColumnDef::new("area").string().not_null())
            .col(ColumnDef::new("title_ja").string().not_null())
            .col(ColumnDef::new("title_en").string().not_null())
            .col(ColumnDef::new("description").text().not_null())
            .col(ColumnDef::new("builtin").boolean().not_null())
            .col(ColumnDef::new("created_by_org").uuid().null())
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![],
    }
}

fn matrix_versions() -> CreateTable {
    CreateTable {
        name: "m20261126_000204_create_matrix_versions",
        table: Table::create()
            .table("matrix_versions")
            .if_not_exists()
            .col(ColumnDef::new("id").uuid().not_null().primary_key())
            .col(ColumnDef::new("platform_id").uuid().not_null())
            .col(ColumnDef::new("version").integer().not_null())
            .col(ColumnDef::new("document").text().not_null())
            .col(ColumnDef::new("created_by").string().not_null())
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![index(
            "matrix_versions_platform_version",
            "matrix_versions",
            &["platform_id", "version"],
            true,
        )],
    }
}

fn rule_versions() -> CreateTable {
    CreateTable {
        name: "m20261126_000205_create_rule_versions",
        table: Table::create()
            .table("rule_versions")
            .if_not_exists()
            .col(ColumnDef::new("id").uuid().not_null().primary_key())
            .col(ColumnDef::new("platform_id").uuid().not_null())
            .col(ColumnDef::new("version").integer().not_null())
            .col(ColumnDef::new("state").string().not_null())
            .col(ColumnDef::new("content").text().not_null())
            .col(ColumnDef::new("matrix_version").integer().null())
            .col(ColumnDef::new("created_by").string().not_null())
            .col(at("created_at"))
            .col(at("updated_at"))
            .col(at_null("proposed_at"))
            .col(at_null("respond_by"))
            .col(at_null("in_force_at"))
            .col(at_null("closed_at"))
            .to_owned(),
        indexes: vec![
            index(
                "rule_versions_platform_version",
                "rule_versions",
                &["platform_id", "version"],
                true,
            ),
            index(
                "rule_versions_platform_state",
                "rule_versions",
                &["platform_id", "state"],
                false,
            ),
        ],
    }
}

fn rule_parties() -> CreateTable {
    CreateTable {
        name: "m20261126_000206_create_rule_parties",
        table: Table::create()
            .table("rule_parties")
            .if_not_exists()
            .col(ColumnDef::new("version_id").uuid().not_null())
            .col(ColumnDef::new("organization_id").uuid().not_null())
            .col(ColumnDef::new("position").string().not_null())
            .col(ColumnDef::new("reason").text().null())
            .col(ColumnDef::new("rule_objections").text().not_null())
            .col(ColumnDef::new("decided_by").string().null())
            .col(at_null("decided_at"))
            .col(ColumnDef::new("joined_late").boolean().not_null())
            .primary_key(Index::create().col("version_id").col("organization_id"))
            .foreign_key(
                ForeignKey::create()
                    .from("rule_parties", "version_id")
                    .to("rule_versions", "id"),
            )
            .to_owned(),
        indexes: vec![index(
            "rule_parties_version_position",
            "rule_parties",
            &["version_id", "position"],
            false,
        )],
    }
}

fn rule_decisions() -> CreateTable {
    CreateTable {
        name: "m20261126_000207_create_rule_decisions",
        table: Table::create()
            .table("rule_decisions")
            .if_not_exists()
            .col(ColumnDef::new("id").uuid().not_null().primary_key())
            .col(ColumnDef::new("version_id").uuid().not_null())
            .col(ColumnDef::new("organization_id").uuid().not_null())
            .col(ColumnDef::new("decision").string().not_null())
            .col(ColumnDef::new("reason").text().null())
            .col(ColumnDef::new("rule_objections").text().not_null())
            .col(ColumnDef::new("decided_by").string().not_null())
            .col(at("decided_at"))
            .foreign_key(
                ForeignKey::create()
                    .from("rule_decisions", "version_id")
                    .to("rule_versions", "id"),
            )
            .to_owned(),
        indexes: vec![index(
            "rule_decisions_version_org",
            "rule_decisions",
            &["version_id", "organization_id"],
            false,
        )],
    }
}

fn reminders() -> CreateTable {
    CreateTable {
        name: "m20261126_000208_create_reminders",
        table: Table::create()
            .table("reminders")
            .if_not_exists()
            .col(ColumnDef::new("id").uuid().not_null().primary_key())
            .col(ColumnDef::new("version_id").uuid().not_null())
            .col(at("due_at"))
            .col(at_null("sent_at"))
            .foreign_key(
                ForeignKey::create()
                    .from("reminders", "version_id")
                    .to("rule_versions", "id"),
            )
            .to_owned(),
        indexes: vec![index(
            "reminders_due",
            "reminders",
            &["sent_at", "due_at"],
            false,
        )],
    }
}
