//! Request and response bodies of the demarcation API (snake_case JSON).

use chrono::{DateTime, Utc};
use renkei_web::openapi::one_of;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Decision, RaciRole, ResponsibilityClass};
use crate::store::control;

// The closed vocabularies of request fields, for the OpenAPI document.
fn raci_roles() -> Object {
    one_of(&RaciRole::ALL, RaciRole::as_str)
}
fn classes() -> Object {
    one_of(&ResponsibilityClass::ALL, ResponsibilityClass::as_str)
}
fn decisions() -> Object {
    one_of(&Decision::ALL, Decision::as_str)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateControl {
    /// Stable id: a-z, 0-9, `-` and `.`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9.-]{1,63}$")]
    pub id: String,
    /// Title in Japanese; at least one title is required.
    #[schema(max_length = 300)]
    pub title_ja: Option<String>,
    #[schema(max_length = 300)]
    pub title_en: Option<String>,
    /// Free grouping word (`technical`, `organization`, …); default `custom`.
    pub area: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Control {
    pub id: String,
    pub area: String,
    pub title_ja: String,
    pub title_en: String,
    pub description: String,
    pub builtin: bool,
    /// The organisation that added it: shown to that organisation and to
    /// readers of everything, `null` to anyone else.
    pub created_by_org: Option<Uuid>,
}

impl From<control::Model> for Control {
    fn from(m: control::Model) -> Self {
        Control {
            id: m.id,
            area: m.area,
            title_ja: m.title_ja,
            title_en: m.title_en,
            description: m.description,
            builtin: m.builtin,
            created_by_org: m.created_by_org,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    pub control: String,
    /// Absent: platform-wide; else one linked system's connection.
    #[serde(default)]
    pub system_id: Option<Uuid>,
    pub organization_id: Uuid,
    /// `responsible`, `accountable`, `consulted` or `informed`.
    #[schema(schema_with = raci_roles)]
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassBody {
    pub control: String,
    pub system_id: Uuid,
    /// `provided`, `inherited`, `shared` or `own`.
    #[schema(schema_with = classes)]
    pub class: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMatrix {
    /// Controls in scope; absent means the whole catalogue.
    #[serde(default)]
    pub controls: Option<Vec<String>>,
    #[serde(default)]
    pub assignments: Vec<AssignmentBody>,
    #[serde(default)]
    pub classes: Vec<ClassBody>,
    /// The version this change was made from; a 409 if another change came first.
    #[serde(default)]
    pub base_version: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatrixView {
    pub platform_id: Uuid,
    /// `null` until a matrix is first saved.
    pub version: Option<u32>,
    pub controls: Option<Vec<String>>,
    pub assignments: Vec<AssignmentBody>,
    pub classes: Vec<ClassBody>,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionParam {
    /// A saved version; the latest when absent.
    pub version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GapView {
    pub control: String,
    pub system_id: Uuid,
    /// `no_accountable`, `no_responsible`, `conflicting_accountable`,
    /// `outsider` or `class_mismatch`.
    pub kind: String,
    pub organizations: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GapReport {
    pub platform_id: Uuid,
    pub matrix_version: Option<u32>,
    pub controls_in_scope: usize,
    pub systems: usize,
    pub complete: bool,
    pub gaps: Vec<GapView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    #[schema(min_length = 1, max_length = 40)]
    pub id: String,
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    #[serde(default)]
    pub controls: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CooperationBody {
    #[serde(default)]
    pub ordinary: String,
    #[serde(default)]
    pub emergency: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRules {
    /// Default: "Common rules".
    #[schema(max_length = 300)]
    pub title: Option<String>,
    #[schema(min_items = 1, max_items = 500)]
    pub rules: Vec<RuleBody>,
    #[serde(default)]
    pub cooperation: Option<CooperationBody>,
    #[serde(default)]
    pub emergency_measures: Option<Vec<String>>,
    /// The matrix version the rules refer to; default the latest saved.
    #[serde(default)]
    pub matrix_version: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRules {
    pub title: Option<String>,
    pub rules: Option<Vec<RuleBody>>,
    pub cooperation: Option<CooperationBody>,
    pub emergency_measures: Option<Vec<String>>,
    pub matrix_version: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RulesVersionView {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    /// `draft`, `proposed`, `in_force`, `superseded` or `withdrawn`.
    pub state: String,
    pub title: String,
    pub rules: Vec<RuleBody>,
    pub cooperation: CooperationBody,
    pub emergency_measures: Vec<String>,
    pub matrix_version: Option<u32>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub proposed_at: Option<DateTime<Utc>>,
    pub respond_by: Option<DateTime<Utc>>,
    pub in_force_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeBody {
    /// Response deadline; default 14 days from now.
    pub respond_by: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleObjection {
    pub rule_id: String,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `accept`, `object` (a reason is required) or `withdraw_objection`.
    #[schema(schema_with = decisions)]
    pub decision: String,
    pub reason: Option<String>,
    /// Objections to single rules.
    #[serde(default)]
    pub rules: Vec<RuleObjection>,
    /// The deciding organisation; must be the caller's own.
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub id: Uuid,
    pub version_id: Uuid,
    pub organization_id: Uuid,
    pub decision: String,
    pub reason: Option<String>,
    pub rules: Vec<RuleObjection>,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartyView {
    pub organization_id: Uuid,
    /// `pending`, `accepted` or `objected`.
    pub position: String,
    pub reason: Option<String>,
    pub rules: Vec<RuleObjection>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Joined after the version came into force.
    pub joined_late: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsensusView {
    pub version_id: Uuid,
    pub version: u32,
    pub state: String,
    pub respond_by: Option<DateTime<Utc>>,
    pub required: Vec<Uuid>,
    pub accepted: Vec<Uuid>,
    pub objected: Vec<Uuid>,
    pub pending: Vec<Uuid>,
    pub parties: Vec<PartyView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DocumentParams {
    /// `markdown` (default) or `html`.
    pub format: Option<String>,
    /// `ja` or `en`; default from Accept-Language, else `ja`.
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StateFilter {
    /// Only versions in this state.
    pub state: Option<String>,
}
