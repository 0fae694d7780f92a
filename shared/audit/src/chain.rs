//! The hash chain, as pure logic: an entry's canonical bytes, its hash
//! (SHA-256 of the previous entry's hash followed by those bytes, its
//! number included), and the walk that re-computes a stored chain and names
//! the first entry that was changed, removed or inserted.
//!
//! No database, HTTP or NATS types: the store feeds stored rows in, in
//! `seq` order, and gets an [`Outcome`] back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use chrono::{DateTime, SubsecRound as _, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first entry of every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How far from its stored number the walk looks for the number an entry
/// was hashed with (an attacker who renumbers entries to hide a removal or
/// make room for an insertion cannot change the number inside the hash).
const RENUMBER_SEARCH: i64 = 1_000;

/// Accepted entries the walk remembers, to recognise a link that skips
/// back over inserted entries.
const WINDOW: usize = 1_024;

/// One entry of an audit chain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1, 2, 3 … without gaps, per service.
    pub seq: i64,
    /// UUIDv7: orders entries of all services by time.
    pub id: Uuid,
    /// Whole microseconds (what every database keeps).
    pub at: DateTime<Utc>,
    pub actor_sub: String,
    /// The actor's organisation; none for installation admins and the
    /// services' own background work.
    pub actor_org: Option<Uuid>,
    /// The actor's roles, comma-separated.
    pub actor_roles: String,
    /// What was done: `system.updated`, `rules.decision_recorded` …
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    /// The organisation the object belongs to (for per-organisation reading).
    pub organization_id: Option<Uuid>,
    /// The W3C trace id of the request or task that made the change.
    pub trace_id: Option<String>,
    /// Small JSON, as stored text (hashed as it is, never re-serialised).
    pub detail: Option<String>,
    /// Hex SHA-256 of the previous entry ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` and this entry's canonical bytes.
    pub hash: String,
}

/// A timestamp as the chain keeps it: whole microseconds.
pub fn timestamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn field(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u64).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            field(out, v);
        }
    }
}

/// SHA-256 of `prev_hash` (its 32 bytes; text that is not a hash is hashed
/// as text, so it can never match) followed by `canonical`, in hex.
pub fn link(prev_hash: &str, canonical: &[u8]) -> String {
    let mut hasher = Sha256::new();
    match hex::decode(prev_hash) {
        Ok(bytes) if bytes.len() == 32 => hasher.update(&bytes),
        _ => {
            hasher.update(b"not a hash:");
            hasher.update(prev_hash.as_bytes());
        }
    }
    hasher.update(canonical);
    hex::encode(hasher.finalize())
}

impl Entry {
    /// The bytes that are hashed: a version tag, then every field but the
    /// two hashes, each length-prefixed (an absent value differs from an
    /// empty one), `seq` as if it were `seq`.
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"renkei.audit.entry.v1\n");
        out.extend_from_slice(&seq.to_be_bytes());
        field(&mut out, &self.id.to_string());
        out.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
        field(&mut out, &self.actor_sub);
        optional(&mut out, self.actor_org.map(|o| o.to_string()).as_deref());
        field(&mut out, &self.actor_roles);
        field(&mut out, &self.action);
        field(&mut out, &self.object_type);
        field(&mut out, &self.object_id);
        optional(
            &mut out,
            self.organization_id.map(|o| o.to_string()).as_deref(),
        );
        optional(&mut out, self.trace_id.as_deref());
        optional(&mut out, self.detail.as_deref());
        out
    }

    /// The hash this entry should carry, from its own `prev_hash` and `seq`.
    pub fn computed_hash(&self) -> String {
        self.hash_at(self.seq)
    }

    fn hash_at(&self, seq: i64) -> String {
        link(&self.prev_hash, &self.canonical(seq))
    }

    /// Links this entry after `prev_hash` at `seq`: sets both hashes.
    pub fn seal(mut self, seq: i64, prev_hash: &str) -> Entry {
        self.seq = seq;
        self.prev_hash = prev_hash.to_owned();
        self.hash = self.hash_at(seq);
        self
    }

    /// Whether the stored hash is what the content gives.
    pub fn holds(&self) -> bool {
        self.hash == self.computed_hash()
    }

    /// What names this entry in a report.
    pub fn reference(&self) -> EntryRef {
        EntryRef {
            seq: self.seq,
            id: self.id,
            at: self.at,
            action: self.action.clone(),
            actor_sub: self.actor_sub.clone(),
        }
    }
}

/// Names an entry in a report: number, id, what, who and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_sub: String,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} (id {}, {} by {} at {})",
            self.seq,
            self.id,
            self.action,
            self.actor_sub,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

/// How a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The entry's content no longer gives its stored hash.
    OwnHash,
    /// Its hash was recomputed, but the next entry links to another one.
    NextLink,
    /// The recorded chain head (`audit_head`) disagrees, at this number.
    RecordedHead(i64),
    /// A signed head disagrees, at this number.
    SignedHead(i64),
    /// The numbers jump.
    Gap,
    /// Entries were renumbered, but their hashes keep their old numbers.
    Renumbered,
    /// The next entry links over it, to the entry before it.
    LinkedOver,
    /// Its number is used twice.
    Duplicate,
    /// The first entry does not start from the beginning of a chain.
    NoGenesis,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::OwnHash => write!(f, "its content no longer matches its hash"),
            Evidence::NextLink => write!(
                f,
                "its hash was recomputed, but the next entry links to a different one"
            ),
            Evidence::RecordedHead(seq) => {
                write!(
                    f,
                    "the recorded chain head (audit_head, at {seq}) disagrees"
                )
            }
            Evidence::SignedHead(seq) => write!(f, "the signed head at {seq} disagrees"),
            Evidence::Gap => write!(f, "the numbers jump"),
            Evidence::Renumbered => write!(
                f,
                "later entries were renumbered, but their hashes keep their old numbers"
            ),
            Evidence::LinkedOver => write!(f, "the next entry links over it"),
            Evidence::Duplicate => write!(f, "its number is used twice"),
            Evidence::NoGenesis => write!(f, "it does not start a chain"),
        }
    }
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An entry's content is not what was appended.
    Changed { entry: EntryRef, evidence: Evidence },
    /// Entries numbered `from..=to` (when they were appended) are gone;
    /// `after` is the last intact entry before them (none: the start).
    Removed {
        after: Option<EntryRef>,
        from: i64,
        to: i64,
        evidence: Evidence,
    },
    /// An entry that was never appended.
    Inserted { entry: EntryRef, evidence: Evidence },
    /// The chain differs from a signed head at `at`, though it matched the
    /// one at `since`: entries in between were rewritten and re-hashed.
    Rewritten { at: EntryRef, since: Option<i64> },
    /// A head that this service's key did not sign (forged or altered).
    ForgedHead { seq: i64, reason: String },
}

impl Problem {
    /// The number of the entry the problem is first seen at.
    pub fn seq(&self) -> i64 {
        match self {
            Problem::Changed { entry, .. } | Problem::Inserted { entry, .. } => entry.seq,
            Problem::Removed { from, .. } => *from,
            Problem::Rewritten { at, since } => since.map_or(1, |s| s + 1).min(at.seq),
            Problem::ForgedHead { seq, .. } => *seq,
        }
    }

    /// `changed`, `removed`, `inserted`, `rewritten` or `forged_head`.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Changed { .. } => "changed",
            Problem::Removed { .. } => "removed",
            Problem::Inserted { .. } => "inserted",
            Problem::Rewritten { .. } => "rewritten",
            Problem::ForgedHead { .. } => "forged_head",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Changed { entry, evidence } => {
                write!(f, "CHANGED: {entry} was changed: {evidence}")
            }
            Problem::Removed {
                after,
                from,
                to,
                evidence,
            } => {
                if from == to {
                    write!(f, "REMOVED: entry {from} was removed")?;
                } else {
                    write!(f, "REMOVED: entries {from} to {to} were removed")?;
                }
                match after {
                    Some(after) => write!(f, " after {after}")?,
                    None => write!(f, " at the start of the chain")?,
                }
                write!(f, ": {evidence}")
            }
            Problem::Inserted { entry, evidence } => {
                write!(f, "INSERTED: {entry} was never appended: {evidence}")
            }
            Problem::Rewritten { at, since } => {
                let from = since.map_or(1, |s| s + 1);
                write!(
                    f,
                    "REWRITTEN: {at} differs from the signed head at {}; entries {from} to {} were rewritten and re-hashed",
                    at.seq, at.seq
                )?;
                if let Some(since) = since {
                    write!(f, " (the signed head at {since} still matches)")?;
                }
                Ok(())
            }
            Problem::ForgedHead { seq, reason } => {
                write!(f, "FORGED HEAD: the head for entry {seq} {reason}")
            }
        }
    }
}

/// The chain head a service keeps beside its log (`audit_head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub seq: i64,
    pub hash: String,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Entries read.
    pub entries: u64,
    /// The last entry's number, if any.
    pub last_seq: Option<i64>,
    pub problem: Option<Problem>,
    /// The newest signed head the chain matches.
    pub signed: Option<i64>,
}

impl Outcome {
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

#[derive(Debug, Clone)]
struct Seen {
    entry: EntryRef,
    hash: String,
}

/// Re-computes a chain fed in `seq` order, remembering only a window, so a
/// chain of any length is checked in constant memory.
#[derive(Debug)]
pub struct Walk {
    entries: u64,
    last: Option<Seen>,
    window: VecDeque<Seen>,
    by_hash: HashMap<String, i64>,
    pending: Option<Entry>,
    problem: Option<Problem>,
    recorded: Option<Recorded>,
    /// Signed heads (seq → hash) and what the chain holds at their numbers.
    heads: BTreeMap<i64, (String, Option<Seen>)>,
    last_stored: Option<i64>,
}

impl Walk {
    /// A walk that also checks the recorded head and the (already
    /// signature-checked) signed heads `(seq, hash)`.
    pub fn new(
        recorded: Option<Recorded>,
        signed: impl IntoIterator<Item = (i64, String)>,
    ) -> Walk {
        Walk {
            entries: 0,
            last: None,
            window: VecDeque::new(),
            by_hash: HashMap::new(),
            pending: None,
            problem: None,
            recorded,
            heads: signed
                .into_iter()
                .filter(|(seq, _)| *seq > 0)
                .map(|(seq, hash)| (seq, (hash, None)))
                .collect(),
            last_stored: None,
        }
    }

    /// The next stored entry (in `seq` order).
    pub fn push(&mut self, entry: Entry) {
        self.entries += 1;
        self.last_stored = Some(entry.seq);
        if let Some((_, seen @ None)) = self.heads.get_mut(&entry.seq) {
            *seen = Some(Seen {
                entry: entry.reference(),
                hash: entry.hash.clone(),
            });
        }
        if self.problem.is_some() {
            return;
        }
        if let Some(previous) = self.pending.take() {
            self.check(previous, Some(&entry));
        }
        self.pending = Some(entry);
    }

    /// The verdict, once every entry was pushed.
    pub fn finish(mut self) -> Outcome {
        if self.problem.is_none()
            && let Some(last) = self.pending.take()
        {
            self.check(last, None);
        }
        let last_seq = self.last.as_ref().map_or(0, |l| l.entry.seq);
        if self.problem.is_none()
            && let Some(recorded) = &self.recorded
        {
            if recorded.seq > last_seq {
                self.problem = Some(Problem::Removed {
                    after: self.last.as_ref().map(|l| l.entry.clone()),
                    from: last_seq + 1,
                    to: recorded.seq,
                    evidence: Evidence::RecordedHead(recorded.seq),
                });
            } else if let Some(last) = &self.last
                && recorded.seq == last.entry.seq
                && recorded.hash != last.hash
            {
                self.problem = Some(Problem::Changed {
                    entry: last.entry.clone(),
                    evidence: Evidence::RecordedHead(recorded.seq),
                });
            }
        }
        let mut signed = None;
        if self.problem.is_none() {
            for (seq, (hash, seen)) in &self.heads {
                match seen {
                    None => {
                        self.problem = Some(Problem::Removed {
                            after: self.last.as_ref().map(|l| l.entry.clone()),
                            from: last_seq + 1,
                            to: *seq,
                            evidence: Evidence::SignedHead(*seq),
                        });
                        break;
                    }
                    Some(seen) if &seen.hash == hash => signed = Some(*seq),
                    Some(seen) => {
                        let since = signed;
                        self.problem = Some(if since == Some(seq - 1) || *seq == 1 {
                            Problem::Changed {
                                entry: seen.entry.clone(),
                                evidence: Evidence::SignedHead(*seq),
                            }
                        } else {
                            Problem::Rewritten {
                                at: seen.entry.clone(),
                                since,
                            }
                        });
                        break;
                    }
                }
            }
        }
        Outcome {
            entries: self.entries,
            last_seq: self.last_stored,
            problem: self.problem,
            signed,
        }
    }

    fn accept(&mut self, entry: &Entry) {
        let seen = Seen {
            entry: entry.reference(),
            hash: entry.hash.clone(),
        };
        self.by_hash.insert(seen.hash.clone(), seen.entry.seq);
        self.window.push_back(seen.clone());
        if self.window.len() > WINDOW
            && let Some(old) = self.window.pop_front()
        {
            self.by_hash.remove(&old.hash);
        }
        self.last = Some(seen);
    }

    fn seen_at(&self, seq: i64) -> Option<&Seen> {
        self.window.iter().find(|s| s.entry.seq == seq)
    }

    /// The number `entry` was hashed with, when it is not its stored one.
    fn hashed_as(&self, entry: &Entry) -> Option<i64> {
        let before = if entry.prev_hash == GENESIS {
            Some(0)
        } else {
            self.by_hash.get(&entry.prev_hash).copied()
        };
        if let Some(before) = before
            && before + 1 != entry.seq
            && entry.hash_at(before + 1) == entry.hash
        {
            return Some(before + 1);
        }
        (1..=RENUMBER_SEARCH)
            .flat_map(|d| [entry.seq + d, entry.seq - d])
            .filter(|seq| *seq >= 1)
            .find(|seq| entry.hash_at(*seq) == entry.hash)
    }

    fn found(&mut self, problem: Problem) {
        self.problem = Some(problem);
    }

    fn check(&mut self, entry: Entry, next: Option<&Entry>) {
        let expected_seq = self.last.as_ref().map_or(1, |l| l.entry.seq + 1);
        let expected_prev = self
            .last
            .as_ref()
            .map_or(GENESIS.to_owned(), |l| l.hash.clone());
        if let Some(recorded) = &self.recorded
            && entry.seq > recorded.seq
        {
            let evidence = Evidence::RecordedHead(recorded.seq);
            return self.found(Problem::Inserted {
                entry: entry.reference(),
                evidence,
            });
        }
        let holds = entry.holds();
        let links = entry.prev_hash == expected_prev;
        if holds && links && entry.seq == expected_seq {
            return self.accept(&entry);
        }
        let linked_over = next.is_some_and(|n| n.prev_hash == expected_prev);
        if let Some(last) = &self.last
            && entry.seq <= last.entry.seq
        {
            // A number used twice: the one the chain goes on from is real.
            let inserted = if next.is_some_and(|n| n.prev_hash == entry.hash) && holds {
                last.entry.clone()
            } else {
                entry.reference()
            };
            return self.found(Problem::Inserted {
                entry: inserted,
                evidence: Evidence::Duplicate,
            });
        }
        if !holds {
            if linked_over {
                return self.found(Problem::Inserted {
                    entry: entry.reference(),
                    evidence: Evidence::LinkedOver,
                });
            }
            if let Some(was) = self.hashed_as(&entry) {
                if was > entry.seq {
                    let after = self.last.as_ref().map(|l| l.entry.clone());
                    return self.found(Problem::Removed {
                        after,
                        from: entry.seq,
                        to: was - 1,
                        evidence: Evidence::Renumbered,
                    });
                }
                if let Some(first) = self.seen_at(was) {
                    let first = first.entry.clone();
                    return self.found(Problem::Inserted {
                        entry: first,
                        evidence: Evidence::Renumbered,
                    });
                }
            }
            return self.found(Problem::Changed {
                entry: entry.reference(),
                evidence: Evidence::OwnHash,
            });
        }
        if entry.seq > expected_seq {
            let after = self.last.as_ref().map(|l| l.entry.clone());
            return self.found(Problem::Removed {
                after,
                from: expected_seq,
                to: entry.seq - 1,
                evidence: Evidence::Gap,
            });
        }
        // Its own hash holds and its number follows, but it does not link.
        if linked_over {
            return self.found(Problem::Inserted {
                entry: entry.reference(),
                evidence: Evidence::LinkedOver,
            });
        }
        if let Some(&before) = self.by_hash.get(&entry.prev_hash)
            && let Some(first) = self.seen_at(before + 1)
        {
            let first = first.entry.clone();
            return self.found(Problem::Inserted {
                entry: first,
                evidence: Evidence::LinkedOver,
            });
        }
        match &self.last {
            Some(last) => {
                let entry = last.entry.clone();
                self.found(Problem::Changed {
                    entry,
                    evidence: Evidence::NextLink,
                })
            }
            None => self.found(Problem::Changed {
                entry: entry.reference(),
                evidence: Evidence::NoGenesis,
            }),
        }
    }
}

/// Walks `entries` (in `seq` order) with no recorded or signed head.
pub fn verify(entries: impl IntoIterator<Item = Entry>) -> Outcome {
    let mut walk = Walk::new(None, []);
    for entry in entries {
        walk.push(entry);
    }
    walk.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> Entry {
        Entry {
            seq: 0,
            id: Uuid::now_v7(),
            at: timestamp(Utc::now()),
            actor_sub: format!("user-{n}"),
            actor_org: Some(Uuid::now_v7()),
            actor_roles: "operator".into(),
            action: "system.updated".into(),
            object_type: "system".into(),
            object_id: Uuid::now_v7().to_string(),
            organization_id: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            detail: Some(format!("{{\"n\":{n}}}")),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// A well-formed chain of `n` entries, numbered from 1.
    fn chain(n: i64) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = entry(seq).seal(seq, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(entries: &[Entry]) -> Recorded {
        entries.last().map_or(
            Recorded {
                seq: 0,
                hash: GENESIS.into(),
            },
            |e| Recorded {
                seq: e.seq,
                hash: e.hash.clone(),
            },
        )
    }

    fn walk(entries: &[Entry], recorded: Option<Recorded>, signed: &[(i64, String)]) -> Outcome {
        let mut walk = Walk::new(recorded, signed.iter().cloned());
        for e in entries {
            walk.push(e.clone());
        }
        walk.finish()
    }

    fn problem(entries: &[Entry], recorded: Option<Recorded>) -> Problem {
        walk(entries, recorded, &[])
            .problem
            .expect("a problem is found")
    }

    #[test]
    fn an_untouched_chain_is_intact_and_an_empty_one_too() {
        let c = chain(20);
        let outcome = walk(&c, Some(head(&c)), &[(20, c[19].hash.clone())]);
        assert_eq!(outcome.problem, None);
        assert_eq!(outcome.entries, 20);
        assert_eq!(outcome.last_seq, Some(20));
        assert_eq!(outcome.signed, Some(20));
        let empty = walk(&[], Some(head(&[])), &[]);
        assert!(empty.intact());
        assert_eq!(empty.entries, 0);
    }

    #[test]
    fn every_field_is_in_the_hash_and_absent_differs_from_empty() {
        let base = entry(1).seal(1, GENESIS);
        type Change = Box<dyn Fn(&mut Entry)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.id = Uuid::now_v7()),
            Box::new(|e| e.at += chrono::Duration::microseconds(1)),
            Box::new(|e| e.actor_sub.push('x')),
            Box::new(|e| e.actor_org = None),
            Box::new(|e| e.actor_roles = "admin".into()),
            Box::new(|e| e.action = "system.registered".into()),
            Box::new(|e| e.object_type = "link".into()),
            Box::new(|e| e.object_id.push('0')),
            Box::new(|e| e.organization_id = Some(Uuid::nil())),
            Box::new(|e| e.trace_id = None),
            Box::new(|e| e.detail = Some(String::new())),
            Box::new(|e| e.prev_hash = chain(1)[0].hash.clone()),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut e = base.clone();
            change(&mut e);
            assert!(!e.holds(), "field {i} is not covered by the hash");
        }
        assert_ne!(base.hash_at(1), base.hash_at(2), "seq is in the hash");
        // Field boundaries cannot be shifted: "ab"+"c" differs from "a"+"bc".
        let mut a = base.clone();
        a.actor_sub = "ab".into();
        a.actor_roles = "c".into();
        let mut b = base.clone();
        b.actor_sub = "a".into();
        b.actor_roles = "bc".into();
        assert_ne!(a.canonical(1), b.canonical(1));
    }

    #[test]
    fn a_changed_entry_is_named_by_its_own_hash() {
        let mut c = chain(10);
        c[4].action = "system.deleted".into();
        let p = problem(&c, Some(head(&c)));
        assert_eq!(
            p,
            Problem::Changed {
                entry: c[4].reference(),
                evidence: Evidence::OwnHash
            }
        );
        assert_eq!(p.seq(), 5);
        assert!(p.to_string().contains("entry 5"), "{p}");
    }

    #[test]
    fn a_changed_entry_whose_hash_was_recomputed_is_named_by_its_successors_link() {
        let mut c = chain(10);
        c[4].detail = Some("{\"n\":999}".into());
        c[4].hash = c[4].computed_hash();
        let p = problem(&c, Some(head(&c)));
        assert_eq!(
            p,
            Problem::Changed {
                entry: c[4].reference(),
                evidence: Evidence::NextLink
            }
        );
    }

    #[test]
    fn the_last_entry_changed_and_rehashed_is_named_by_the_recorded_head() {
        let c = chain(5);
        let recorded = head(&c);
        let mut tampered = c.clone();
        tampered[4].actor_sub = "someone-else".into();
        tampered[4].hash = tampered[4].computed_hash();
        let p = problem(&tampered, Some(recorded.clone()));
        assert_eq!(
            p,
            Problem::Changed {
                entry: tampered[4].reference(),
                evidence: Evidence::RecordedHead(5)
            }
        );
        // With the recorded head updated too, the signed head still names it.
        let outcome = walk(
            &tampered,
            Some(head(&tampered)),
            &[(4, c[3].hash.clone()), (5, c[4].hash.clone())],
        );
        assert_eq!(
            outcome.problem,
            Some(Problem::Changed {
                entry: tampered[4].reference(),
                evidence: Evidence::SignedHead(5)
            })
        );
    }

    #[test]
    fn a_removed_entry_is_named_by_the_gap() {
        let mut c = chain(10);
        let gone = c.remove(4);
        let p = problem(&c, Some(head(&c)));
        assert_eq!(
            p,
            Problem::Removed {
                after: Some(c[3].reference()),
                from: gone.seq,
                to: gone.seq,
                evidence: Evidence::Gap
            }
        );
        assert!(
            p.to_string().contains("entry 5 was removed after entry 4"),
            "{p}"
        );
    }

    #[test]
    fn the_first_entry_removed_is_a_removal_at_the_start() {
        let mut c = chain(3);
        c.remove(0);
        let p = problem(&c, None);
        assert_eq!(
            p,
            Problem::Removed {
                after: None,
                from: 1,
                to: 1,
                evidence: Evidence::Gap
            }
        );
    }

    #[test]
    fn removed_entries_hidden_by_renumbering_are_still_found() {
        let mut c = chain(10);
        c.drain(4..6);
        for e in &mut c[4..] {
            e.seq -= 2;
        }
        let p = problem(&c, Some(head(&c)));
        assert_eq!(
            p,
            Problem::Removed {
                after: Some(c[3].reference()),
                from: 5,
                to: 6,
                evidence: Evidence::Renumbered
            }
        );
    }

    #[test]
    fn a_truncated_chain_is_a_removal_by_the_recorded_and_the_signed_head() {
        let c = chain(10);
        let recorded = head(&c);
        let signed = [(10, c[9].hash.clone())];
        let truncated = &c[..8];
        assert_eq!(
            problem(truncated, Some(recorded)),
            Problem::Removed {
                after: Some(c[7].reference()),
                from: 9,
                to: 10,
                evidence: Evidence::RecordedHead(10)
            }
        );
        // The recorded head moved back too: the signed head still knows.
        let outcome = walk(truncated, Some(head(truncated)), &signed);
        assert_eq!(
            outcome.problem,
            Some(Problem::Removed {
                after: Some(c[7].reference()),
                from: 9,
                to: 10,
                evidence: Evidence::SignedHead(10)
            })
        );
    }

    #[test]
    fn an_entry_inserted_with_its_own_number_is_beyond_the_recorded_head() {
        let mut c = chain(5);
        let recorded = head(&c);
        let forged = entry(99).seal(6, &c[4].hash);
        c.push(forged.clone());
        assert_eq!(
            problem(&c, Some(recorded)),
            Problem::Inserted {
                entry: forged.reference(),
                evidence: Evidence::RecordedHead(5)
            }
        );
    }

    #[test]
    fn an_entry_inserted_in_the_middle_is_linked_over_by_its_successor() {
        let c = chain(10);
        // Renumbered to make room, the forgery well made: linked and hashed.
        let forged = entry(99).seal(5, &c[3].hash);
        let mut tampered: Vec<Entry> = c[..4].to_vec();
        tampered.push(forged.clone());
        tampered.extend(c[4..].iter().cloned().map(|mut e| {
            e.seq += 1;
            e
        }));
        let mut recorded = head(&c);
        recorded.seq += 1;
        assert_eq!(
            problem(&tampered, Some(recorded.clone())),
            Problem::Inserted {
                entry: forged.reference(),
                evidence: Evidence::Renumbered
            }
        );
        // A careless forgery (no valid hash) is linked over by its successor.
        let mut careless = tampered.clone();
        careless[4].hash = "00".repeat(32);
        assert_eq!(
            problem(&careless, Some(recorded)),
            Problem::Inserted {
                entry: careless[4].reference(),
                evidence: Evidence::LinkedOver
            }
        );
    }

    #[test]
    fn an_entry_inserted_before_renumbered_and_rehashed_ones_is_linked_over() {
        // The forger made room at 5, renumbered the later entries and
        // re-hashed each with its old link (hashing, but not relinking).
        let c = chain(8);
        let forged = entry(99).seal(5, &c[3].hash);
        let mut tampered: Vec<Entry> = c[..4].to_vec();
        tampered.push(forged.clone());
        for e in &c[4..] {
            let mut moved = e.clone();
            moved.seq += 1;
            moved.hash = moved.computed_hash();
            tampered.push(moved);
        }
        let p = problem(&tampered, None);
        assert_eq!(
            p,
            Problem::Inserted {
                entry: forged.reference(),
                evidence: Evidence::LinkedOver
            }
        );
    }

    #[test]
    fn a_number_used_twice_is_an_insertion() {
        let c = chain(6);
        let mut tampered = c.clone();
        let twin = entry(42).seal(3, &c[1].hash);
        tampered.insert(3, twin.clone());
        assert_eq!(
            problem(&tampered, None),
            Problem::Inserted {
                entry: twin.reference(),
                evidence: Evidence::Duplicate
            }
        );
    }

    #[test]
    fn a_chain_rewritten_from_a_point_on_is_caught_by_the_signed_heads() {
        let c = chain(30);
        let signed = vec![(10, c[9].hash.clone()), (30, c[29].hash.clone())];
        // Entry 20 changed and everything after it re-hashed and re-linked.
        let mut rewritten = c[..19].to_vec();
        let mut prev = c[18].hash.clone();
        for e in &c[19..] {
            let mut e = e.clone();
            if e.seq == 20 {
                e.action = "nothing.happened".into();
            }
            let e = e.clone().seal(e.seq, &prev);
            prev = e.hash.clone();
            rewritten.push(e);
        }
        let outcome = walk(&rewritten, Some(head(&rewritten)), &signed);
        assert_eq!(
            outcome.problem,
            Some(Problem::Rewritten {
                at: rewritten[29].reference(),
                since: Some(10)
            })
        );
        assert_eq!(outcome.signed, Some(10));
        let text = outcome.problem.expect("problem").to_string();
        assert!(text.contains("entries 11 to 30"), "{text}");
    }

    #[test]
    fn the_first_problem_wins_and_every_entry_is_still_counted() {
        let mut c = chain(10);
        c[2].action = "x".into();
        c[6].action = "y".into();
        let outcome = walk(&c, Some(head(&c)), &[]);
        assert_eq!(outcome.entries, 10);
        assert_eq!(outcome.problem.expect("problem").seq(), 3);
    }

    #[test]
    fn timestamps_keep_whole_microseconds() {
        let at = DateTime::parse_from_rfc3339("2026-05-01T10:00:00.123456789Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(timestamp(at).timestamp_subsec_nanos(), 123_456_000);
    }
}
