//! The emergency tables as sea-orm entities. JSON documents are text
//! columns (`renkei_store::json`).

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// Incidents, one per declaration.
pub mod incident {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "incidents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub system_id: Uuid,
        /// The owner of the system (the declaring organisation).
        pub org_id: Uuid,
        pub declared_by: String,
        pub category: String,
        pub severity: i32,
        pub tlp: String,
        pub summary: String,
        pub detected_at: DateTimeUtc,
        pub declared_at: DateTimeUtc,
        pub status: String,
        pub status_changed_at: DateTimeUtc,
        /// The initial report's deadline; cleared once it is filed.
        pub report_due_at: Option<DateTimeUtc>,
        pub report_escalated_at: Option<DateTimeUtc>,
        /// Set when a (re-)assessment of the spread is owed.
        pub assessment_due_at: Option<DateTimeUtc>,
        /// How many assessments were made.
        pub assessments: i32,
        /// Set until the playbook's tasks are made (the responsibility
        /// matrix is asked for their owners).
        pub tasks_due_at: Option<DateTimeUtc>,
        pub review: Option<String>,
        pub closed_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// The organisations an incident may spread to, with the state of their alert.
pub mod affected {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "affected_orgs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub incident_id: Uuid,
        pub org_id: Uuid,
        /// JSON list of its systems the incident can reach.
        pub system_ids: String,
        /// JSON list of paths (system ids from the incident's system).
        pub paths: String,
        pub hops: i32,
        /// Whether the latest assessment still finds it at risk.
        pub at_risk: bool,
        /// The assessment that first found it.
        pub assessment: i32,
        pub alerted_at: DateTimeUtc,
        pub notification_id: Option<Uuid>,
        pub delivered_at: Option<DateTimeUtc>,
        pub step: i32,
        pub acknowledged_at: Option<DateTimeUtc>,
        pub acknowledged_by: Option<String>,
        pub exhausted_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

/// Every incident's append-only timeline.
pub mod timeline {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "timeline")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub incident_id: Uuid,
        pub at: DateTimeUtc,
        /// `declared`, `assessed`, `alerted`, `delivered`, `acknowledged`,
        /// `escalated`, `status_changed`, `task_changed`, `message_posted`,
        /// `report_filed`, `reviewed`…
        pub kind: String,
        /// Who: a token subject, `contact:<id>`, or `renkei`.
        pub actor: String,
        /// The organisation the entry is about, when it is about one.
        pub org_id: Option<Uuid>,
        pub text: String,
        /// JSON object with the entry's details.
        pub detail: String,
        pub trace_id: Option<String>,
    }

    no_relations!();
}

/// Playbooks per platform and incident category.
pub mod playbook {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "playbooks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub category: String,
        pub title: String,
        /// JSON list of steps.
        pub steps: String,
        pub version: i32,
        pub updated_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// The tasks a playbook became on an incident.
pub mod task {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub incident_id: Uuid,
        pub position: i32,
        pub title: String,
        pub control: String,
        pub description: String,
        pub owner_org_id: Option<Uuid>,
        /// `matrix` (accountable in the matrix), `matrix_responsible`, or
        /// `platform_operator` (the matrix names nobody).
        pub owner_source: String,
        pub due_at: DateTimeUtc,
        pub state: String,
        pub reason: Option<String>,
        pub updated_by: Option<String>,
        pub updated_at: DateTimeUtc,
        pub escalated_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

/// Coordination messages on incidents.
pub mod message {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub incident_id: Uuid,
        pub from_org_id: Uuid,
        pub author: String,
        pub kind: String,
        pub text: String,
        pub tlp: String,
        pub urgency: String,
        pub ack_required: bool,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

/// Per addressed organisation: a message's delivery and acknowledgement.
pub mod message_recipient {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message_recipients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub message_id: Uuid,
        pub incident_id: Uuid,
        pub org_id: Uuid,
        pub delivered_at: Option<DateTimeUtc>,
        pub acknowledged_at: Option<DateTimeUtc>,
        pub acknowledged_by: Option<String>,
    }

    no_relations!();
}

/// Advisories in ordinary times.
pub mod advisory {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "advisories")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// `None`: every platform.
        pub platform_id: Option<Uuid>,
        pub title: String,
        pub text: String,
        pub tlp: String,
        pub severity: i32,
        pub act_by: Option<DateTimeUtc>,
        pub issued_by_org: Uuid,
        pub issued_by: String,
        pub created_at: DateTimeUtc,
        /// When those who had not confirmed by `act_by` were escalated.
        pub escalated_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

/// Per organisation: an advisory's delivery and confirmation.
pub mod advisory_recipient {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "advisory_recipients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub advisory_id: Uuid,
        pub org_id: Uuid,
        pub delivered_at: Option<DateTimeUtc>,
        pub confirmed_at: Option<DateTimeUtc>,
        pub confirmed_by: Option<String>,
        pub escalated_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

/// Reports to the central body.
pub mod report {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub incident_id: Uuid,
        pub kind: String,
        /// `draft` or `filed`.
        pub state: String,
        /// JSON report content.
        pub content: String,
        pub org_id: Uuid,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub filed_at: Option<DateTimeUtc>,
        pub filed_by: Option<String>,
    }

    no_relations!();
}
