//! sea-orm entities of the contacts service's tables.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// Organisations and systems, as the registry announced them: which
/// organisations a platform's notices and drills reach.
pub use renkei_bus::registry_copy::{organization, system};

/// People of an organisation and how to reach them.
pub mod contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        /// The one system this contact is for; none: the whole organisation.
        pub system_id: Option<Uuid>,
        pub name: String,
        pub role: String,
        pub availability: String,
        pub time_zone: String,
        pub language: String,
        /// `[domain::Channel]` as JSON, webhook secrets included (never
        /// returned by the API).
        #[sea_orm(column_type = "Text")]
        pub channels: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// An organisation's escalation policy, for all its systems or one.
pub mod policy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "escalation_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        /// A system id, or `*` for the whole organisation (a key column
        /// cannot be NULL).
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        /// `domain::Policy` as JSON.
        #[sea_orm(column_type = "Text")]
        pub policy: String,
        pub updated_by: String,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// A platform's cooperation map, when its operator saved one.
pub mod cooperation_map {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cooperation_maps")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform_id: Uuid,
        /// `domain::CooperationMap` as JSON.
        #[sea_orm(column_type = "Text")]
        pub map: String,
        pub version: i32,
        pub updated_by: String,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// Something that must reach people of one or more organisations.
pub mod notification {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The event subject that caused it.
        pub subject: String,
        /// What it is about; one notification per topic and organisation.
        pub topic: String,
        /// `ordinary` or `emergency`.
        pub condition: String,
        pub platform_id: Option<Uuid>,
        pub incident_id: Option<Uuid>,
        pub drill_id: Option<Uuid>,
        /// The event that caused it (none for drills started here).
        pub source_event_id: Option<Uuid>,
        /// `domain::Notice` as JSON: what the messages say.
        #[sea_orm(column_type = "Text")]
        pub notice: String,
        pub state: String,
        /// Whether each organisation must acknowledge; if not, it is told
        /// through the first step that reaches someone, without escalation.
        pub ack_required: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// Trace context (W3C, as JSON) of the event that opened it: its
        /// deliveries and acknowledgements continue that trace.
        #[sea_orm(column_type = "Text", nullable)]
        pub trace_headers: Option<String>,
    }

    no_relations!();
}

/// One organisation of a notification: its escalation and acknowledgement.
pub mod recipient {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notification_orgs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub notification_id: Uuid,
        /// The notification's topic, so (topic, org) can be unique.
        pub topic: String,
        pub org_id: Uuid,
        /// The organisation's systems concerned (JSON list; empty: all).
        #[sea_orm(column_type = "Text")]
        pub systems: String,
        /// `domain::Detail` as JSON: what this organisation's messages add
        /// to the notice (its own systems at risk and the paths to them).
        #[sea_orm(column_type = "Text", nullable)]
        pub detail: Option<String>,
        /// `domain::Policy` as JSON, fixed when the notification was made.
        #[sea_orm(column_type = "Text")]
        pub policy: String,
        pub state: String,
        /// 0-based step and round of the escalation.
        pub step: i32,
        pub round: i32,
        pub step_started_at: DateTimeUtc,
        /// When the current step's wait ends (the escalation timer); none
        /// once acknowledged or exhausted.
        pub next_at: Option<DateTimeUtc>,
        pub delivered_at: Option<DateTimeUtc>,
        pub last_delivered_at: Option<DateTimeUtc>,
        pub acknowledged_at: Option<DateTimeUtc>,
        pub acknowledged_by: Option<String>,
        pub acknowledged_via: Option<String>,
        pub exhausted_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

/// One message to one contact through one channel, with its retries.
pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub notification_id: Uuid,
        pub recipient_id: Uuid,
        pub org_id: Uuid,
        pub step: i32,
        pub round: i32,
        pub contact_id: Uuid,
        pub contact_name: String,
        /// `webhook`, `email`…
        pub channel: String,
        /// The URL or address (never a secret).
        pub address: String,
        pub language: String,
        pub state: String,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// A claimed delivery whose sender died is retried after this.
        pub lease_until: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        pub delivered_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

/// Every attempt of every delivery, as it went.
pub mod attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub delivery_id: Uuid,
        pub attempted_at: DateTimeUtc,
        pub ok: bool,
        /// `HTTP 200`, `250 queued`, or the error.
        #[sea_orm(column_type = "Text")]
        pub detail: String,
        pub duration_ms: i64,
    }

    no_relations!();
}

/// The TLP marking of each incident and advisory, as their latest events
/// said: notices that refer to one without carrying its marking (a task or
/// a report overdue) are marked with it.
pub mod marking {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "markings")]
    pub struct Model {
        /// The incident's or the advisory's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// `incident` or `advisory`.
        pub kind: String,
        pub tlp: String,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

/// A contact drill of a platform and its schedule.
pub mod drill {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drills")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub started_by: String,
        /// Hours between runs; none: run once.
        pub repeat_every_hours: Option<i32>,
        pub next_run_at: Option<DateTimeUtc>,
        pub runs: i32,
        pub last_notification_id: Option<Uuid>,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}
