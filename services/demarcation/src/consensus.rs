//! The steps that move rules versions and the joining flow, each inside the
//! caller's transaction together with the events it causes (staged in the
//! outbox). Used by the HTTP handlers and by the registry-event consumer, so
//! one rule holds whoever triggers it.
//!
//! Locks (PostgreSQL; SQLite has one writer and needs none): whatever
//! changes a version's state or who is a party locks the platform row first,
//! then the version row. Decisions on a proposal only share-lock the version
//! (and lock their own party row), so many organisations decide side by side
//! while a change of state waits for them; after its commit, the decision
//! that may have completed the consensus [`settle`]s the version under the
//! locks. On SQLite the last acceptance puts the version in force in its own
//! transaction. A newcomer's decision on the version in force locks the platform,
//! like the registrations it must not miss.

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::contracts::demarcation as contract;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};
use uuid::Uuid;

use crate::domain::rules::{check_objection, reminder_schedule};
use crate::domain::{
    Consensus, Decision, DecisionRefused, IllegalMove, Invalid, Position, VersionState,
};
use crate::store::{self, reminder, rule_decision, rule_party, rule_version};
use renkei_store::Db;
use sea_orm::{QuerySelect, TransactionTrait};

/// Why a step was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Illegal(#[from] IllegalMove),
    #[error(transparent)]
    Refused(#[from] DecisionRefused),
    /// The version changed state while the request was being decided.
    #[error("the rules version changed while your decision was recorded; send it again")]
    Changed,
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn version_no(v: &rule_version::Model) -> u32 {
    u32::try_from(v.version).unwrap_or_default()
}

/// Proposes a draft: withdraws any open proposal of the platform, asks every
/// organisation owning a pending or active linked system, schedules the
/// reminders, and comes into force at once when there is nobody to ask.
pub async fn propose<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    draft: rule_version::Model,
    respond_by: DateTime<Utc>,
) -> Result<rule_version::Model, FlowError> {
    store::lock_platform(conn, draft.platform_id).await?;
    // Read again under the lock: a concurrent request may have proposed it.
    let draft = rule_version::Entity::find_by_id(draft.id)
        .one(conn)
        .await?
        .ok_or(FlowError::NotFound("rules version"))?;
    let next = store::state_of(&draft)?.propose()?;
    if let Some(open) =
        store::version_in_state(conn, draft.platform_id, VersionState::Proposed).await?
    {
        withdraw(conn, outbox, open, Some(draft.id)).await?;
    }
    let mut required: Vec<Uuid> = store::member_systems(conn, draft.platform_id)
        .await?
        .into_iter()
        .map(|s| s.owner_org_id)
        .collect();
    required.sort();
    required.dedup();
    store::add_parties(conn, draft.id, &required, false).await?;
    let now = Utc::now();
    let reminders: Vec<reminder::ActiveModel> = reminder_schedule(now, respond_by)
        .into_iter()
        .map(|due_at| reminder::ActiveModel {
            id: Set(Uuid::now_v7()),
            version_id: Set(draft.id),
            due_at: Set(due_at),
            sent_at: Set(None),
        })
        .collect();
    if !reminders.is_empty() {
        reminder::Entity::insert_many(reminders)
            .exec_without_returning(conn)
            .await?;
    }
    let title = store::content_of(&draft)?.title;
    let mut model: rule_version::ActiveModel = draft.into();
    model.state = Set(next.as_str().to_owned());
    model.proposed_at = Set(Some(now));
    model.respond_by = Set(Some(respond_by));
    model.updated_at = Set(now);
    let proposed = model.update(conn).await?;
    outbox
        .stage(
            conn,
            None,
            &contract::RulesProposed {
                version_id: proposed.id,
                platform_id: proposed.platform_id,
                version: version_no(&proposed),
                title,
                respond_by,
                required: required.clone(),
            },
        )
        .await?;
    if required.is_empty()
        && let Some(in_force) = come_into_force(conn, outbox, proposed.id).await?
    {
        return Ok(in_force);
    }
    Ok(proposed)
}

/// Withdraws a draft or a proposal (`replaced_by`: the proposal that
/// replaced it).
pub async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    version: rule_version::Model,
    replaced_by: Option<Uuid>,
) -> Result<rule_version::Model, FlowError> {
    // Wait for decisions in flight on it, and see its latest state.
    let version = rule_version::Entity::find_by_id(version.id)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or(FlowError::NotFound("rules version"))?;
    let next = store::state_of(&version)?.withdraw()?;
    let now = Utc::now();
    let mut model: rule_version::ActiveModel = version.into();
    model.state = Set(next.as_str().to_owned());
    model.closed_at = Set(Some(now));
    model.updated_at = Set(now);
    let withdrawn = model.update(conn).await?;
    outbox
        .stage(
            conn,
            None,
            &contract::RulesWithdrawn {
                version_id: withdrawn.id,
                platform_id: withdrawn.platform_id,
                version: version_no(&withdrawn),
                replaced_by,
            },
        )
        .await?;
    Ok(withdrawn)
}

/// What one decision request says.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub organization_id: Uuid,
    pub decided_by: String,
    pub decision: Decision,
    pub reason: Option<String>,
    /// `(rule_id, reason)` of an objection, per rule.
    pub per_rule: Vec<(String, String)>,
}

/// What [`decide`] did.
#[derive(Debug)]
pub struct Decided {
    pub version: rule_version::Model,
    pub party: rule_party::Model,
    /// The decision accepted a proposal: after the commit, [`settle`] it.
    pub may_complete: bool,
}

/// Records one organisation's decision: the new position, the decision log
/// and the event. On the version in force, an acceptance lets the registry
/// activate the organisation's systems; on a proposal, the caller settles
/// the version after the commit.
pub async fn decide<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    seen: &rule_version::Model,
    input: DecisionInput,
) -> Result<Decided, FlowError> {
    let (platform_id, version_id) = (seen.platform_id, seen.id);
    // SQLite runs one write transaction at a time: no locks to take, and the
    // consensus is completed inside this transaction. Elsewhere the state the
    // caller saw (unlocked) chooses the locks; it is checked again below.
    let serialised = conn.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
    let newcomer_path = !serialised && store::state_of(seen)? == VersionState::InForce;
    if newcomer_path {
        store::lock_platform(conn, platform_id).await?;
    }
    let version = rule_version::Entity::find_by_id(version_id)
        .lock_shared()
        .one(conn)
        .await?
        .ok_or(FlowError::NotFound("rules version"))?;
    let state = store::state_of(&version)?;
    state.accepts_decisions()?;
    if state == VersionState::InForce && !newcomer_path && !serialised {
        // It came into force since the caller's read; its parties have all
        // accepted, so only a newcomer gets here, and must lock the platform.
        return Err(FlowError::Changed);
    }
    let org = input.organization_id;
    let party = match store::party_for_update(conn, version.id, org).await? {
        Some(party) => party,
        None => {
            // Not asked (yet): an owner of a pending or active system joins.
            let member = store::member_systems(conn, platform_id)
                .await?
                .iter()
                .any(|s| s.owner_org_id == org);
            if !member {
                return Err(FlowError::Forbidden(
                    "your organisation owns no pending or active system on this platform, so it is not a party to these rules".into(),
                ));
            }
            store::add_parties(conn, version.id, &[org], state == VersionState::InForce).await?;
            store::party_for_update(conn, version.id, org)
                .await?
                .ok_or(FlowError::NotFound("party"))?
        }
    };
    let from = store::position_of(&party)?;
    let to = from.decide(state, input.decision)?;
    let (reason, objections) = match input.decision {
        Decision::Object => {
            let content = store::content_of(&version)?;
            let reason = check_objection(&content, input.reason.as_deref(), &input.per_rule)?;
            let per_rule: Vec<serde_json::Value> = input
                .per_rule
                .iter()
                .map(|(rule_id, reason)| serde_json::json!({"rule_id": rule_id, "reason": reason.trim()}))
                .collect();
            (Some(reason), serde_json::Value::Array(per_rule).to_string())
        }
        _ => {
            let reason = input
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty());
            if reason.is_some_and(|r| r.chars().count() > 5_000) {
                return Err(Invalid::new("reason", "must be at most 5000 characters").into());
            }
            (reason.map(str::to_owned), "[]".to_owned())
        }
    };
    let now = Utc::now();
    rule_decision::Entity::insert(rule_decision::ActiveModel {
        id: Set(Uuid::now_v7()),
        version_id: Set(version.id),
        organization_id: Set(org),
        decision: Set(input.decision.as_str().to_owned()),
        reason: Set(reason.clone()),
        rule_objections: Set(objections.clone()),
        decided_by: Set(input.decided_by.clone()),
        decided_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    let mut row: rule_party::ActiveModel = party.into();
    row.position = Set(to.as_str().to_owned());
    row.reason = Set(if to == Position::Objected {
        reason.clone()
    } else {
        None
    });
    row.rule_objections = Set(if to == Position::Objected {
        objections
    } else {
        "[]".to_owned()
    });
    row.decided_by = Set(Some(input.decided_by.clone()));
    row.decided_at = Set(Some(now));
    let party = row.update(conn).await?;
    outbox
        .stage(
            conn,
            Some(org),
            &contract::DecisionRecorded {
                version_id: version.id,
                platform_id,
                version: version_no(&version),
                organization_id: org,
                decision: input.decision.as_str().to_owned(),
                reason,
                decided_by: input.decided_by,
            },
        )
        .await?;
    if (state, to) == (VersionState::InForce, Position::Accepted) {
        stage_accepted(conn, outbox, &version, &[org]).await?;
    }
    let mut may_complete = (state, to) == (VersionState::Proposed, Position::Accepted);
    let mut version = version;
    if may_complete && serialised {
        if let Some(in_force) = come_into_force(conn, outbox, version.id).await? {
            version = in_force;
        }
        may_complete = false;
    }
    Ok(Decided {
        may_complete,
        version,
        party,
    })
}

/// After an acceptance of a proposal: if nobody is left to accept, puts the
/// version in force in a transaction of its own, under the locks. Returns
/// the version when it came into force now. Also run at start, so a crash
/// between a last acceptance and this step only delays it.
pub async fn settle(
    db: &Db,
    outbox: &Outbox,
    version_id: Uuid,
) -> Result<Option<rule_version::Model>, FlowError> {
    if store::not_accepted(&db.read, version_id).await? > 0 {
        return Ok(None);
    }
    let Some(version) = rule_version::Entity::find_by_id(version_id)
        .one(&db.read)
        .await?
    else {
        return Ok(None);
    };
    let txn = db.write.begin().await?;
    store::lock_platform(&txn, version.platform_id).await?;
    let in_force = come_into_force(&txn, outbox, version.id).await?;
    outbox.commit(txn).await?;
    Ok(in_force)
}

/// [`settle`] for every open proposal (at start).
pub async fn settle_all(db: &Db, outbox: &Outbox) -> Result<usize, FlowError> {
    let open = rule_version::Entity::find()
        .filter(rule_version::Column::State.eq(VersionState::Proposed.as_str()))
        .all(&db.read)
        .await?;
    let mut settled = 0;
    for version in open {
        if settle(db, outbox, version.id).await?.is_some() {
            settled += 1;
        }
    }
    Ok(settled)
}

/// Full consensus reached: the version comes into force, the one before is
/// superseded, and every accepting organisation's systems may be activated.
/// The caller holds the platform lock; this locks the version (waiting for
/// decisions in flight) and checks again that it is proposed and that every
/// party accepted. `None` when it is not (yet) so.
pub async fn come_into_force<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    version_id: Uuid,
) -> Result<Option<rule_version::Model>, FlowError> {
    let Some(version) = rule_version::Entity::find_by_id(version_id)
        .lock_exclusive()
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if store::state_of(&version)? != VersionState::Proposed
        || store::not_accepted(conn, version.id).await? > 0
    {
        return Ok(None);
    }
    let next = store::state_of(&version)?.come_into_force()?;
    let now = Utc::now();
    if let Some(old) =
        store::version_in_state(conn, version.platform_id, VersionState::InForce).await?
    {
        let superseded = store::state_of(&old)?.supersede()?;
        let mut model: rule_version::ActiveModel = old.clone().into();
        model.state = Set(superseded.as_str().to_owned());
        model.closed_at = Set(Some(now));
        model.updated_at = Set(now);
        model.update(conn).await?;
        outbox
            .stage(
                conn,
                None,
                &contract::RulesSuperseded {
                    version_id: old.id,
                    platform_id: old.platform_id,
                    version: version_no(&old),
                    superseded_by: version.id,
                },
            )
            .await?;
    }
    let mut model: rule_version::ActiveModel = version.into();
    model.state = Set(next.as_str().to_owned());
    model.in_force_at = Set(Some(now));
    model.updated_at = Set(now);
    let in_force = model.update(conn).await?;
    let accepted: Vec<Uuid> = store::parties(conn, in_force.id)
        .await?
        .into_iter()
        .map(|p| p.organization_id)
        .collect();
    outbox
        .stage(
            conn,
            None,
            &contract::RulesInForce {
                version_id: in_force.id,
                platform_id: in_force.platform_id,
                version: version_no(&in_force),
                matrix_version: in_force.matrix_version.and_then(|v| u32::try_from(v).ok()),
                accepted: accepted.clone(),
            },
        )
        .await?;
    stage_accepted(conn, outbox, &in_force, &accepted).await?;
    let operator = store::system::Entity::find_by_id(in_force.platform_id)
        .one(conn)
        .await?
        .map(|p| p.owner_org_id);
    let done = renkei_audit::Action::new("rules.in_force", in_force.id)
        .of(operator)
        .detail(serde_json::json!({
            "platform_id": in_force.platform_id,
            "version": in_force.version,
            "accepted_by": accepted.len(),
        }));
    renkei_audit::record(conn, renkei_audit::Actor::service(crate::SERVICE), done).await?;
    Ok(Some(in_force))
}

/// `demarcation.rules.accepted` for each organisation with systems on the
/// platform still pending (the registry activates them).
async fn stage_accepted<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    version: &rule_version::Model,
    orgs: &[Uuid],
) -> Result<(), FlowError> {
    let mut by_owner: std::collections::HashMap<Uuid, Vec<Uuid>> = std::collections::HashMap::new();
    // Only systems still waiting: re-announcing active ones would make the
    // registry spend a transaction per system for nothing.
    for system in store::member_systems(conn, version.platform_id).await? {
        if system.lifecycle == "pending_rules" {
            by_owner
                .entry(system.owner_org_id)
                .or_default()
                .push(system.id);
        }
    }
    let events: Vec<(Option<Uuid>, contract::RulesAccepted)> = orgs
        .iter()
        .filter_map(|org| {
            let system_ids = by_owner.remove(org)?;
            Some((
                Some(*org),
                contract::RulesAccepted {
                    platform_id: version.platform_id,
                    organization_id: *org,
                    system_ids,
                    rules_version: version_no(version),
                    version_id: Some(version.id),
                },
            ))
        })
        .collect();
    outbox.stage_many(conn, &events).await?;
    Ok(())
}

/// The joining flow: a linked system was registered. If its owner already
/// accepted the rules in force, the system may be activated at once;
/// otherwise the owner is asked to accept them. An open proposal gains the
/// owner as a party.
pub async fn system_joined<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    platform_id: Uuid,
    system_id: Uuid,
    owner: Uuid,
) -> Result<(), FlowError> {
    store::lock_platform(conn, platform_id).await?;
    if let Some(in_force) =
        store::version_in_state(conn, platform_id, VersionState::InForce).await?
    {
        let accepted = store::party(conn, in_force.id, owner)
            .await?
            .map(|p| store::position_of(&p))
            .transpose()?
            == Some(Position::Accepted);
        if accepted {
            outbox
                .stage(
                    conn,
                    Some(owner),
                    &contract::RulesAccepted {
                        platform_id,
                        organization_id: owner,
                        system_ids: vec![system_id],
                        rules_version: version_no(&in_force),
                        version_id: Some(in_force.id),
                    },
                )
                .await?;
        } else {
            store::add_parties(conn, in_force.id, &[owner], true).await?;
            request_acceptance(conn, outbox, &in_force, owner, system_id).await?;
        }
    }
    if let Some(open) = store::version_in_state(conn, platform_id, VersionState::Proposed).await?
        && store::party(conn, open.id, owner).await?.is_none()
    {
        store::add_parties(conn, open.id, &[owner], false).await?;
        request_acceptance(conn, outbox, &open, owner, system_id).await?;
    }
    Ok(())
}

async fn request_acceptance<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    version: &rule_version::Model,
    owner: Uuid,
    system_id: Uuid,
) -> Result<(), FlowError> {
    outbox
        .stage(
            conn,
            Some(owner),
            &contract::AcceptanceRequested {
                version_id: version.id,
                platform_id: version.platform_id,
                version: version_no(version),
                organization_id: owner,
                system_ids: vec![system_id],
            },
        )
        .await?;
    Ok(())
}

/// A system left the platform's members (retired): an organisation with no
/// other pending or active system there is no longer asked, and its
/// silence or objection no longer blocks the open proposal.
pub async fn system_left<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    platform_id: Uuid,
    owner: Uuid,
) -> Result<(), FlowError> {
    store::lock_platform(conn, platform_id).await?;
    let still_member = store::member_systems(conn, platform_id)
        .await?
        .iter()
        .any(|s| s.owner_org_id == owner);
    if still_member {
        return Ok(());
    }
    let Some(open) = store::version_in_state(conn, platform_id, VersionState::Proposed).await?
    else {
        return Ok(());
    };
    rule_party::Entity::delete_many()
        .filter(rule_party::Column::VersionId.eq(open.id))
        .filter(rule_party::Column::OrganizationId.eq(owner))
        .filter(rule_party::Column::Position.ne(Position::Accepted.as_str()))
        .exec(conn)
        .await?;
    come_into_force(conn, outbox, open.id).await?;
    Ok(())
}

/// Who stands where on a version.
pub async fn consensus<C: ConnectionTrait>(
    conn: &C,
    version_id: Uuid,
) -> Result<(Consensus, Vec<rule_party::Model>), FlowError> {
    let parties = store::parties(conn, version_id).await?;
    let positions = parties
        .iter()
        .map(|p| store::position_of(p).map(|pos| (p.organization_id, pos)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Consensus::from_positions(positions), parties))
}
