//! The cooperation map of a platform: for ordinary and for emergency
//! conditions, which organisation informs which. It is the "cooperation
//! system" the common-rules document summarises.

use std::collections::HashSet;

use renkei_domain::{Invalid, valid_name};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One organisation informs another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub from: Uuid,
    pub to: Uuid,
    /// What passes along it ("incident reports", "rule proposals"…).
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CooperationMap {
    pub ordinary: Vec<Line>,
    pub emergency: Vec<Line>,
}

pub const MAX_LINES: usize = 2_000;

/// The organisations a map may name.
#[derive(Debug, Clone)]
pub struct Members {
    pub operator: Uuid,
    /// Owners of the platform's linked systems.
    pub linked: Vec<Uuid>,
    /// Central coordinating bodies of the installation.
    pub central: Vec<Uuid>,
}

impl CooperationMap {
    /// The map of a platform that saved none: the operator and each linked
    /// organisation inform each other, and each informs the central body.
    pub fn default_for(m: &Members) -> CooperationMap {
        let mut ordinary = Vec::new();
        let mut emergency = Vec::new();
        for org in &m.linked {
            if *org == m.operator {
                continue;
            }
            ordinary.push(line(m.operator, *org, "common rules, changes, notices"));
            ordinary.push(line(*org, m.operator, "changes to the linked system"));
            emergency.push(line(m.operator, *org, "spread alerts, emergency measures"));
            emergency.push(line(*org, m.operator, "incident reports, acknowledgements"));
        }
        for central in &m.central {
            for org in std::iter::once(&m.operator).chain(m.linked.iter()) {
                emergency.push(line(*org, *central, "incident reports"));
            }
            emergency.push(line(*central, m.operator, "advisories, instructions"));
        }
        CooperationMap {
            ordinary,
            emergency,
        }
    }

    /// Checks every line names organisations of the platform (or a central body).
    pub fn validate(&self, m: &Members) -> Result<(), Invalid> {
        let known: HashSet<Uuid> = std::iter::once(m.operator)
            .chain(m.linked.iter().copied())
            .chain(m.central.iter().copied())
            .collect();
        for (name, lines) in [("ordinary", &self.ordinary), ("emergency", &self.emergency)] {
            if lines.len() > MAX_LINES {
                return Err(Invalid::new(name, format!("at most {MAX_LINES} lines")));
            }
            for (i, l) in lines.iter().enumerate() {
                for (end, id) in [("from", l.from), ("to", l.to)] {
                    if !known.contains(&id) {
                        return Err(Invalid::new(
                            format!("{name}[{i}].{end}"),
                            "is not an organisation of this platform or a central body",
                        ));
                    }
                }
                if l.from == l.to {
                    return Err(Invalid::new(
                        format!("{name}[{i}].to"),
                        "an organisation does not inform itself",
                    ));
                }
                valid_name(&format!("{name}[{i}].what"), &l.what, 200)?;
            }
        }
        Ok(())
    }
}

fn line(from: Uuid, to: Uuid, what: &str) -> Line {
    Line {
        from,
        to,
        what: what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_map_links_the_operator_each_organisation_and_the_central_body() {
        let m = Members {
            operator: Uuid::now_v7(),
            linked: vec![Uuid::now_v7(), Uuid::now_v7()],
            central: vec![Uuid::now_v7()],
        };
        let map = CooperationMap::default_for(&m);
        assert_eq!(map.ordinary.len(), 4);
        assert!(
            map.emergency
                .iter()
                .any(|l| l.from == m.linked[1] && l.to == m.central[0])
        );
        assert!(
            map.emergency
                .iter()
                .any(|l| l.from == m.operator && l.to == m.linked[0])
        );
        map.validate(&m).expect("the default map is valid");
    }

    #[test]
    fn a_stranger_on_the_map_is_refused_with_its_place() {
        let m = Members {
            operator: Uuid::now_v7(),
            linked: vec![],
            central: vec![],
        };
        let map = CooperationMap {
            ordinary: vec![],
            emergency: vec![line(m.operator, Uuid::now_v7(), "x")],
        };
        assert_eq!(
            map.validate(&m).expect_err("refused").field,
            "emergency[0].to"
        );
    }
}
