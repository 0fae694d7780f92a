//! What each organisation may see of an incident, by its relation to the
//! incident and the incident's TLP marking.
//!
//! | relation                 | clear / green | amber, amber+strict     | red                          |
//! |--------------------------|---------------|-------------------------|------------------------------|
//! | declaring org            | everything    | everything              | everything                   |
//! | operator, central body   | everything    | everything              | everything                   |
//! | affected organisation    | everything    | summary, its own row, its own paths, its own timeline entries | its own row and systems only: no summary, no paths, no one else |
//! | anyone else              | nothing (404) | nothing                 | nothing                      |

use super::Tlp;

/// How a caller stands to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The organisation that owns the incident's system (and declared it).
    Declarer,
    /// The platform operator, the central body, auditors, admins.
    Coordinator,
    /// An organisation the incident may spread to.
    Affected,
    /// Anyone else: the incident does not exist for them.
    Stranger,
}

/// What a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure {
    /// The incident's summary text.
    pub summary: bool,
    /// Other organisations' rows in the affected list and matrix.
    pub others: bool,
    /// The paths from the incident's system to the affected systems.
    pub paths: bool,
    /// Timeline entries about other organisations (else only general
    /// entries and its own).
    pub whole_timeline: bool,
}

impl Disclosure {
    /// Everything.
    pub const ALL: Disclosure = Disclosure {
        summary: true,
        others: true,
        paths: true,
        whole_timeline: true,
    };

    /// What `relation` may see of an incident marked `tlp`; `None`: nothing
    /// at all (answer 404).
    pub fn of(relation: Relation, tlp: Tlp) -> Option<Disclosure> {
        match (relation, tlp) {
            (Relation::Stranger, _) => None,
            (Relation::Declarer | Relation::Coordinator, _) => Some(Disclosure::ALL),
            (Relation::Affected, Tlp::Clear | Tlp::Green) => Some(Disclosure::ALL),
            (Relation::Affected, Tlp::Amber | Tlp::AmberStrict) => Some(Disclosure {
                summary: true,
                others: false,
                paths: true,
                whole_timeline: false,
            }),
            (Relation::Affected, Tlp::Red) => Some(Disclosure {
                summary: false,
                others: false,
                paths: false,
                whole_timeline: false,
            }),
        }
    }

    /// Whether everything may be seen.
    pub fn is_full(&self) -> bool {
        *self == Disclosure::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_see_nothing_whatever_the_marking() {
        for tlp in Tlp::ALL {
            assert_eq!(Disclosure::of(Relation::Stranger, tlp), None);
        }
    }

    #[test]
    fn red_shows_an_affected_organisation_only_its_own_row() {
        let d = Disclosure::of(Relation::Affected, Tlp::Red).expect("visible");
        assert!(!d.summary && !d.others && !d.paths && !d.whole_timeline);
        let amber = Disclosure::of(Relation::Affected, Tlp::AmberStrict).expect("visible");
        assert!(amber.summary && amber.paths && !amber.others);
        assert!(
            Disclosure::of(Relation::Affected, Tlp::Green)
                .expect("visible")
                .is_full()
        );
        assert!(
            Disclosure::of(Relation::Coordinator, Tlp::Red)
                .expect("visible")
                .is_full()
        );
    }
}
