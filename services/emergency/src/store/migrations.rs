//! The emergency schema, one migration per table, run at start-up.

use renkei_store::schema::{
    CreateTable, at, at_null, boolean, index, int, string, text, text_null, uuid, uuid_null,
};
use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = renkei_bus::migrations::all();
        // The Idempotency-Keys of its POST routes.
        all.extend(renkei_web::idempotency::migrations());
        let [organizations, systems] = renkei_bus::registry_copy::tables(
            "m20261126_000501_create_organizations",
            "m20261126_000502_create_systems",
        );
        for table in [
            organizations,
            systems,
            incidents(),
            affected_orgs(),
            timeline(),
            playbooks(),
            tasks(),
            messages(),
            message_recipients(),
            advisories(),
            advisory_recipients(),
            reports(),
        ] {
            all.push(Box::new(table));
        }
        // The audit record: its log and the chain head every append locks.
        all.extend(renkei_audit::store::migrations());
        all
    }
}

fn incidents() -> CreateTable {
    CreateTable {
        name: "m20261126_000503_create_incidents",
        table: Table::create()
            .table("incidents")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("platform_id"))
            .col(uuid("system_id"))
            .col(uuid("org_id"))
            .col(string("declared_by"))
            .col(string("category"))
            .col(int("severity"))
            .col(string("tlp"))
            .col(text("summary"))
            .col(at("detected_at"))
            .col(at("declared_at"))
            .col(string("status"))
            .col(at("status_changed_at"))
            .col(at_null("report_due_at"))
            .col(at_null("report_escalated_at"))
            .col(at_null("assessment_due_at"))
            .col(int("assessments"))
            .col(at_null("tasks_due_at"))
            .col(text_null("review"))
            .col(at_null("closed_at"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![
            index(
                "incidents_platform",
                "incidents",
                &["platform_id", "status"],
                false,
            ),
            index("incidents_org", "incidents", &["org_id"], false),
            index(
                "incidents_assessment_due",
                "incidents",
                &["assessment_due_at"],
                false,
            ),
            index(
                "incidents_report_due",
                "incidents",
                &["report_due_at"],
                false,
            ),
            index("incidents_tasks_due", "incidents", &["tasks_due_at"], false),
        ],
    }
}

fn affected_orgs() -> CreateTable {
    CreateTable {
        name: "m20261126_000504_create_affected_orgs",
        table: Table::create()
            .table("affected_orgs")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("incident_id"))
            .col(uuid("org_id"))
            .col(text("system_ids"))
            .col(text("paths"))
            .col(int("hops"))
            .col(boolean("at_risk"))
            .col(int("assessment"))
            .col(at("alerted_at"))
            .col(uuid_null("notification_id"))
            .col(at_null("delivered_at"))
            .col(int("step"))
            .col(at_null("acknowledged_at"))
            .col(ColumnDef::new("acknowledged_by").string().null())
            .col(at_null("exhausted_at"))
            .to_owned(),
        indexes: vec![
            index(
                "affected_incident_org",
                "affected_orgs",
                &["incident_id", "org_id"],
                true,
            ),
            index("affected_org", "affected_orgs", &["org_id"], false),
        ],
    }
}

fn timeline() -> CreateTable {
    CreateTable {
        name: "m20261126_000505_create_timeline",
        table: Table::create()
            .table("timeline")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("incident_id"))
            .col(at("at"))
            .col(string("kind"))
            .col(string("actor"))
            .col(uuid_null("org_id"))
            .col(text("text"))
            .col(text("detail"))
            .col(ColumnDef::new("trace_id").string().null())
            .to_owned(),
        indexes: vec![index(
            "timeline_incident",
            "timeline",
            &["incident_id", "id"],
            false,
        )],
    }
}

fn playbooks() -> CreateTable {
    CreateTable {
        name: "m20261126_000506_create_playbooks",
        table: Table::create()
            .table("playbooks")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("platform_id"))
            .col(string("category"))
            .col(string("title"))
            .col(text("steps"))
            .col(int("version"))
            .col(string("updated_by"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .to_owned(),
        indexes: vec![index(
            "playbooks_platform_category",
            "playbooks",
            &["platform_id", "category"],
            true,
        )],
    }
}

fn tasks() -> CreateTable {
    CreateTable {
        name: "m20261126_000507_create_tasks",
        table: Table::create()
            .table("tasks")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("incident_id"))
            .col(int("position"))
            .col(string("title"))
            .col(string("control"))
            .col(text("description"))
            .col(uuid_null("owner_org_id"))
            .col(string("owner_source"))
            .col(at("due_at"))
            .col(string("state"))
            .col(text_null("reason"))
            .col(ColumnDef::new("updated_by").string().null())
            .col(at("updated_at"))
            .col(at_null("escalated_at"))
            .to_owned(),
        indexes: vec![
            index(
                "tasks_incident",
                "tasks",
                &["incident_id", "position"],
                false,
            ),
            index("tasks_due", "tasks", &["escalated_at", "due_at"], false),
        ],
    }
}

fn messages() -> CreateTable {
    CreateTable {
        name: "m20261126_000508_create_messages",
        table: Table::create()
            .table("messages")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("incident_id"))
            .col(uuid("from_org_id"))
            .col(string("author"))
            .col(string("kind"))
            .col(text("text"))
            .col(string("tlp"))
            .col(string("urgency"))
            .col(boolean("ack_required"))
            .col(at("created_at"))
            .to_owned(),
        indexes: vec![index(
            "messages_incident",
            "messages",
            &["incident_id", "id"],
            false,
        )],
    }
}

fn message_recipients() -> CreateTable {
    CreateTable {
        name: "m20261126_000509_create_message_recipients",
        table: Table::create()
            .table("message_recipients")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("message_id"))
            .col(uuid("incident_id"))
            .col(uuid("org_id"))
            .col(at_null("delivered_at"))
            .col(at_null("acknowledged_at"))
            .col(ColumnDef::new("acknowledged_by").string().null())
            .to_owned(),
        indexes: vec![index(
            "message_recipients_message_org",
            "message_recipients",
            &["message_id", "org_id"],
            true,
        )],
    }
}

fn advisories() -> CreateTable {
    CreateTable {
        name: "m20261126_000510_create_advisories",
        table: Table::create()
            .table("advisories")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid_null("platform_id"))
            .col(string("title"))
            .col(text("text"))
            .col(string("tlp"))
            .col(int("severity"))
            .col(at_null("act_by"))
            .col(uuid("issued_by_org"))
            .col(string("issued_by"))
            .col(at("created_at"))
            .col(at_null("escalated_at"))
            .to_owned(),
        indexes: vec![index(
            "advisories_due",
            "advisories",
            &["escalated_at", "act_by"],
            false,
        )],
    }
}

fn advisory_recipients() -> CreateTable {
    CreateTable {
        name: "m20261126_000511_create_advisory_recipients",
        table: Table::create()
            .table("advisory_recipients")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("advisory_id"))
            .col(uuid("org_id"))
            .col(at_null("delivered_at"))
            .col(at_null("confirmed_at"))
            .col(ColumnDef::new("confirmed_by").string().null())
            .col(at_null("escalated_at"))
            .to_owned(),
        indexes: vec![index(
            "advisory_recipients_advisory_org",
            "advisory_recipients",
            &["advisory_id", "org_id"],
            true,
        )],
    }
}

fn reports() -> CreateTable {
    CreateTable {
        name: "m20261126_000512_create_reports",
        table: Table::create()
            .table("reports")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(uuid("incident_id"))
            .col(string("kind"))
            .col(string("state"))
            .col(text("content"))
            .col(uuid("org_id"))
            .col(string("created_by"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .col(at_null("filed_at"))
            .col(ColumnDef::new("filed_by").string().null())
            .to_owned(),
        indexes: vec![index(
            "reports_incident",
            "reports",
            &["incident_id", "id"],
            false,
        )],
    }
}
