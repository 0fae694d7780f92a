//! The contacts schema, one migration per table, run at start-up.

use renkei_store::schema::{
    AddColumn, CreateTable, at, at_null, index, int, string, text, uuid, uuid_null,
};
use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = renkei_bus::migrations::all();
        // The Idempotency-Keys of its POST routes.
        all.extend(renkei_web::idempotency::migrations());
        let [organizations, systems] = renkei_bus::registry_copy::tables(
            "m20261126_000401_create_organizations",
            "m20261126_000402_create_systems",
        );
        for table in [
            organizations,
            systems,
            contacts(),
            escalation_policies(),
            cooperation_maps(),
            notifications(),
            notification_orgs(),
            deliveries(),
            delivery_attempts(),
            drills(),
        ] {
            all.push(Box::new(table));
        }
        all.push(Box::new(AddColumn {
            name: "m20261201_000411_add_notifications_ack_required",
            table: "notifications",
            column: ColumnDef::new("ack_required")
                .boolean()
                .not_null()
                .default(true)
                .to_owned(),
        }));
        all.push(Box::new(AddColumn {
            name: "m20261201_000412_add_notification_orgs_detail",
            table: "notification_orgs",
            column: ColumnDef::new("detail").text().null().to_owned(),
        }));
        all.push(Box::new(markings()));
        // The audit record: its log and the chain head every append locks.
        all.extend(renkei_audit::store::migrations());
        all.push(Box::new(AddColumn {
            name: "m20261127_000413_add_notifications_trace_headers",
            table: "notifications",
            column: ColumnDef::new("trace_headers").text().null().to_owned(),
        }));
        all
    }
}

fn contacts() -> CreateTable {
    CreateTable {
        name: "m20261126_000403_create_contacts",
        table: Table::create()
            .table("contacts")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("org_id"))
            .col(uuid_null("system_id"))
            .col(string("name"))
            .col(string("role"))
            .col(string("availability"))
            .col(string("time_zone"))
            .col(string("language"))
            .col(text("channels"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![index("contacts_org", "contacts", &["org_id"], false)],
    }
}

fn escalation_policies() -> CreateTable {
    CreateTable {
        name: "m20261126_000404_create_escalation_policies",
        table: Table::create()
            .table("escalation_policies")
            .if_not_exists()
            .col(uuid("org_id"))
            .col(string("scope"))
            .col(text("policy"))
            .col(string("updated_by"))
            .col(at("updated_at"))
            .primary_key(Index::create().col("org_id").col("scope"))
            .to_owned(),
        indexes: vec![],
    }
}

fn cooperation_maps() -> CreateTable {
    CreateTable {
        name: "m20261126_000405_create_cooperation_maps",
        table: Table::create()
            .table("cooperation_maps")
            .if_not_exists()
            .col(uuid("platform_id").primary_key())
            .col(text("map"))
            .col(int("version"))
            .col(string("updated_by"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![],
    }
}

fn notifications() -> CreateTable {
    CreateTable {
        name: "m20261126_000406_create_notifications",
        table: Table::create()
            .table("notifications")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(string("subject"))
            .col(string("topic"))
            .col(string("condition"))
            .col(uuid_null("platform_id"))
            .col(uuid_null("incident_id"))
            .col(uuid_null("drill_id"))
            .col(uuid_null("source_event_id"))
            .col(text("notice"))
            .col(string("state"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![
            index(
                "notifications_platform",
                "notifications",
                &["platform_id"],
                false,
            ),
            index("notifications_drill", "notifications", &["drill_id"], false),
        ],
    }
}

fn notification_orgs() -> CreateTable {
    CreateTable {
        name: "m20261126_000407_create_notification_orgs",
        table: Table::create()
            .table("notification_orgs")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("notification_id"))
            .col(string("topic"))
            .col(uuid("org_id"))
            .col(text("systems"))
            .col(text("policy"))
            .col(string("state"))
            .col(int("step"))
            .col(int("round"))
            .col(at("step_started_at"))
            .col(at_null("next_at"))
            .col(at_null("delivered_at"))
            .col(at_null("last_delivered_at"))
            .col(at_null("acknowledged_at"))
            .col(ColumnDef::new("acknowledged_by").string().null())
            .col(ColumnDef::new("acknowledged_via").string().null())
            .col(at_null("exhausted_at"))
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![
            // One notification per topic and organisation.
            index(
                "notification_orgs_topic_org",
                "notification_orgs",
                &["topic", "org_id"],
                true,
            ),
            index(
                "notification_orgs_notification",
                "notification_orgs",
                &["notification_id"],
                false,
            ),
            index(
                "notification_orgs_org",
                "notification_orgs",
                &["org_id"],
                false,
            ),
            // The escalation timer's scan.
            index(
                "notification_orgs_due",
                "notification_orgs",
                &["next_at"],
                false,
            ),
        ],
    }
}

fn deliveries() -> CreateTable {
    CreateTable {
        name: "m20261126_000408_create_deliveries",
        table: Table::create()
            .table("deliveries")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("notification_id"))
            .col(uuid("recipient_id"))
            .col(uuid("org_id"))
            .col(int("step"))
            .col(int("round"))
            .col(uuid("contact_id"))
            .col(string("contact_name"))
            .col(string("channel"))
            .col(text("address"))
            .col(string("language"))
            .col(string("state"))
            .col(int("attempts"))
            .col(at("next_attempt_at"))
            .col(at_null("lease_until"))
            .col(ColumnDef::new("last_error").text().null())
            .col(at_null("delivered_at"))
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![
            index(
                "deliveries_recipient",
                "deliveries",
                &["recipient_id"],
                false,
            ),
            index(
                "deliveries_notification",
                "deliveries",
                &["notification_id"],
                false,
            ),
            // The dispatcher's scan.
            index(
                "deliveries_due",
                "deliveries",
                &["state", "next_attempt_at"],
                false,
            ),
        ],
    }
}

fn delivery_attempts() -> CreateTable {
    CreateTable {
        name: "m20261126_000409_create_delivery_attempts",
        table: Table::create()
            .table("delivery_attempts")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("delivery_id"))
            .col(at("attempted_at"))
            .col(ColumnDef::new("ok").boolean().not_null())
            .col(text("detail"))
            .col(ColumnDef::new("duration_ms").big_integer().not_null())
            .to_owned(),
        indexes: vec![index(
            "delivery_attempts_delivery",
            "delivery_attempts",
            &["delivery_id"],
            false,
        )],
    }
}

fn drills() -> CreateTable {
    CreateTable {
        name: "m20261126_000410_create_drills",
        table: Table::create()
            .table("drills")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("platform_id"))
            .col(string("started_by"))
            .col(ColumnDef::new("repeat_every_hours").integer().null())
            .col(at_null("next_run_at"))
            .col(int("runs"))
            .col(uuid_null("last_notification_id"))
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![index("drills_platform", "drills", &["platform_id"], false)],
    }
}

fn markings() -> CreateTable {
    CreateTable {
        name: "m20261201_000413_create_markings",
        table: Table::create()
            .table("markings")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(string("kind"))
            .col(string("tlp"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![],
    }
}
