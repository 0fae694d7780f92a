//! sea-orm entities of the demarcation service's tables.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// The control catalogue.
pub mod control {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "controls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub area: String,
        pub title_ja: String,
        pub title_en: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        /// Shipped with Renkei (loaded at start) rather than added by an operator.
        pub builtin: bool,
        pub created_by_org: Option<Uuid>,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

/// Organisations and systems, as the registry announced them: who owns
/// what on which platform decides who must agree to its rules.
pub use renkei_bus::registry_copy::{organization, system};

/// Every saved version of every platform's matrix (immutable).
pub mod matrix_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "matrix_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub version: i32,
        /// `domain::Matrix` as JSON.
        #[sea_orm(column_type = "Text")]
        pub document: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

/// Common-rules versions.
pub mod rule_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rule_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub version: i32,
        pub state: String,
        /// `domain::RulesContent` as JSON.
        #[sea_orm(column_type = "Text")]
        pub content: String,
        /// The matrix version the rules refer to.
        pub matrix_version: Option<i32>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub proposed_at: Option<DateTimeUtc>,
        pub respond_by: Option<DateTimeUtc>,
        pub in_force_at: Option<DateTimeUtc>,
        /// When it was superseded or withdrawn.
        pub closed_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

/// Where each required organisation stands on a version (the latest of its
/// decisions; the history is in `rule_decisions`).
pub mod rule_party {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rule_parties")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub version_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization_id: Uuid,
        pub position: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub reason: Option<String>,
        /// `[{rule_id, reason}]` of the standing objection, as JSON.
        #[sea_orm(column_type = "Text")]
        pub rule_objections: String,
        pub decided_by: Option<String>,
        pub decided_at: Option<DateTimeUtc>,
        /// Joined after the version came into force (a newcomer).
        pub joined_late: bool,
    }

    no_relations!();
}

/// Every decision ever taken, append-only: who, when, on which version.
pub mod rule_decision {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rule_decisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub version_id: Uuid,
        pub organization_id: Uuid,
        pub decision: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub reason: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub rule_objections: String,
        pub decided_by: String,
        pub decided_at: DateTimeUtc,
    }

    no_relations!();
}

/// Reminders of a proposal's deadline, due and sent.
pub mod reminder {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reminders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub version_id: Uuid,
        pub due_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
    }

    no_relations!();
}
