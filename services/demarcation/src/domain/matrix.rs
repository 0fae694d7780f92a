//! The responsibility matrix of a platform and its gap analysis.
//!
//! An assignment gives one organisation one RACI role for one control,
//! either platform-wide (`system_id` absent) or for one linked system's
//! connection to the platform. For a given control and system, the
//! system-specific assignments of a role replace the platform-wide ones of
//! that role: an operator can say "the platform is accountable everywhere"
//! once and name each agency responsible for its own connection.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Invalid, parse_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaciRole {
    Responsible,
    Accountable,
    Consulted,
    Informed,
}

impl RaciRole {
    pub const ALL: [RaciRole; 4] = [
        RaciRole::Responsible,
        RaciRole::Accountable,
        RaciRole::Consulted,
        RaciRole::Informed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RaciRole::Responsible => "responsible",
            RaciRole::Accountable => "accountable",
            RaciRole::Consulted => "consulted",
            RaciRole::Informed => "informed",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<RaciRole, Invalid> {
        parse_word(field, value, &RaciRole::ALL, RaciRole::as_str)
    }

    /// The one-letter form used in the exported table.
    pub fn letter(self) -> &'static str {
        match self {
            RaciRole::Responsible => "R",
            RaciRole::Accountable => "A",
            RaciRole::Consulted => "C",
            RaciRole::Informed => "I",
        }
    }
}

/// Who provides a control for a linked system (the shared-responsibility model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponsibilityClass {
    /// The platform provides it; the linked system does nothing.
    Provided,
    /// The linked system inherits the platform's measure and keeps it intact.
    Inherited,
    /// Both carry part of it.
    Shared,
    /// The linked system's own measure.
    Own,
}

impl ResponsibilityClass {
    pub const ALL: [ResponsibilityClass; 4] = [
        ResponsibilityClass::Provided,
        ResponsibilityClass::Inherited,
        ResponsibilityClass::Shared,
        ResponsibilityClass::Own,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponsibilityClass::Provided => "provided",
            ResponsibilityClass::Inherited => "inherited",
            ResponsibilityClass::Shared => "shared",
            ResponsibilityClass::Own => "own",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<ResponsibilityClass, Invalid> {
        parse_word(
            field,
            value,
            &ResponsibilityClass::ALL,
            ResponsibilityClass::as_str,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub control: String,
    /// `None`: platform-wide.
    pub system_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub role: RaciRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassEntry {
    pub control: String,
    pub system_id: Uuid,
    pub class: ResponsibilityClass,
}

/// One version of a platform's matrix, as stored and exchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// Controls in scope; `None` means the whole catalogue.
    pub controls: Option<Vec<String>>,
    pub assignments: Vec<Assignment>,
    pub classes: Vec<ClassEntry>,
}

/// What the gap analysis needs to know of a platform.
#[derive(Debug, Clone)]
pub struct PlatformView {
    pub platform_id: Uuid,
    pub operator_org_id: Uuid,
    /// Linked systems that are pending or active, with their owners.
    pub systems: Vec<(Uuid, Uuid)>,
}

impl PlatformView {
    /// The operator and the owners of pending or active linked systems.
    pub fn members(&self) -> BTreeSet<Uuid> {
        let mut members: BTreeSet<Uuid> = self.systems.iter().map(|(_, owner)| *owner).collect();
        members.insert(self.operator_org_id);
        members
    }

    fn knows_system(&self, id: Uuid) -> bool {
        id == self.platform_id || self.systems.iter().any(|(s, _)| *s == id)
    }
}

/// The roles held for one control on one system, after overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub responsible: Vec<Uuid>,
    pub accountable: Vec<Uuid>,
    pub consulted: Vec<Uuid>,
    pub informed: Vec<Uuid>,
    pub class: Option<ResponsibilityClass>,
}

impl Effective {
    fn slot(&mut self, role: RaciRole) -> &mut Vec<Uuid> {
        match role {
            RaciRole::Responsible => &mut self.responsible,
            RaciRole::Accountable => &mut self.accountable,
            RaciRole::Consulted => &mut self.consulted,
            RaciRole::Informed => &mut self.informed,
        }
    }
}

/// Platform-wide assignments and assignments per system, of one control.
type ControlAssignments<'a> = (Vec<&'a Assignment>, HashMap<Uuid, Vec<&'a Assignment>>);

/// A matrix indexed by control and system (see [`Matrix::lookup`]).
#[derive(Debug, Default)]
pub struct Lookup<'a> {
    by_control: HashMap<&'a str, ControlAssignments<'a>>,
    classes: HashMap<(&'a str, Uuid), ResponsibilityClass>,
}

impl Lookup<'_> {
    /// Who holds which role for `control` on `system`: for each role, the
    /// system's own assignments if it has any, else the platform-wide ones.
    pub fn effective(&self, control: &str, system: Uuid) -> Effective {
        let mut wide = Effective::default();
        let mut specific = Effective::default();
        if let Some((platform_wide, per_system)) = self.by_control.get(control) {
            for a in platform_wide {
                wide.slot(a.role).push(a.organization_id);
            }
            for a in per_system.get(&system).into_iter().flatten() {
                specific.slot(a.role).push(a.organization_id);
            }
        }
        let mut out = Effective::default();
        for role in RaciRole::ALL {
            let chosen = if specific.slot(role).is_empty() {
                std::mem::take(wide.slot(role))
            } else {
                std::mem::take(specific.slot(role))
            };
            let mut chosen: Vec<Uuid> = chosen
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            out.slot(role).append(&mut chosen);
        }
        out.class = self.classes.get(&(control, system)).copied();
        out
    }
}

/// What the gap analysis found wrong for one control on one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// Nobody is accountable.
    NoAccountable,
    /// Nobody is responsible.
    NoResponsible,
    /// More than one organisation is accountable.
    ConflictingAccountable,
    /// An organisation that is not on the platform holds a role.
    Outsider,
    /// The class says who carries the control, the assignments disagree
    /// (`own` without the system's owner responsible, `provided` without
    /// the operator responsible).
    ClassMismatch,
}

impl GapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::NoAccountable => "no_accountable",
            GapKind::NoResponsible => "no_responsible",
            GapKind::ConflictingAccountable => "conflicting_accountable",
            GapKind::Outsider => "outsider",
            GapKind::ClassMismatch => "class_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Gap {
    pub control: String,
    pub system_id: Uuid,
    pub kind: GapKind,
    pub organizations: Vec<Uuid>,
}

impl Matrix {
    /// Checks the matrix against the catalogue and the platform; every
    /// error names the field (`assignments[3].control`).
    pub fn validate(
        &self,
        catalogue: &HashSet<String>,
        platform: &PlatformView,
    ) -> Result<(), Invalid> {
        if let Some(controls) = &self.controls {
            let mut seen = HashSet::new();
            for (i, control) in controls.iter().enumerate() {
                let field = format!("controls[{i}]");
                if !catalogue.contains(control) {
                    return Err(Invalid::new(
                        field,
                        format!("`{control}` is not in the control catalogue"),
                    ));
                }
                if !seen.insert(control) {
                    return Err(Invalid::new(field, format!("`{control}` is listed twice")));
                }
            }
        }
        if self.assignments.len() > 100_000 {
            return Err(Invalid::new("assignments", "at most 100000 assignments"));
        }
        let mut seen = HashSet::new();
        for (i, a) in self.assignments.iter().enumerate() {
            if !catalogue.contains(&a.control) {
                return Err(Invalid::new(
                    format!("assignments[{i}].control"),
                    format!("`{}` is not in the control catalogue", a.control),
                ));
            }
            if let Some(system) = a.system_id
                && !platform.knows_system(system)
            {
                return Err(Invalid::new(
                    format!("assignments[{i}].system_id"),
                    "names no system on this platform",
                ));
            }
            if !seen.insert((&a.control, a.system_id, a.organization_id, a.role)) {
                return Err(Invalid::new(
                    format!("assignments[{i}]"),
                    "repeats an earlier assignment",
                ));
            }
        }
        let mut seen = HashSet::new();
        for (i, c) in self.classes.iter().enumerate() {
            if !catalogue.contains(&c.control) {
                return Err(Invalid::new(
                    format!("classes[{i}].control"),
                    format!("`{}` is not in the control catalogue", c.control),
                ));
            }
            if !platform.knows_system(c.system_id) || c.system_id == platform.platform_id {
                return Err(Invalid::new(
                    format!("classes[{i}].system_id"),
                    "names no linked system on this platform",
                ));
            }
            if !seen.insert((&c.control, c.system_id)) {
                return Err(Invalid::new(
                    format!("classes[{i}]"),
                    "gives a second class for the same control and system",
                ));
            }
        }
        Ok(())
    }

    /// The controls in scope, in catalogue order.
    pub fn scope<'a>(&'a self, catalogue: &'a [String]) -> Vec<&'a str> {
        match &self.controls {
            Some(list) => catalogue
                .iter()
                .filter(|c| list.contains(c))
                .map(String::as_str)
                .collect(),
            None => catalogue.iter().map(String::as_str).collect(),
        }
    }

    /// Who holds which role for `control` on `system` (the platform itself
    /// for platform-wide duties).
    pub fn effective(&self, control: &str, system: Uuid) -> Effective {
        self.lookup().effective(control, system)
    }

    /// The matrix indexed by control and system, for many lookups (the gap
    /// analysis, the document's table): each is then proportional to the
    /// assignments of that one control, not to the whole matrix.
    pub fn lookup(&self) -> Lookup<'_> {
        let mut lookup = Lookup::default();
        for a in &self.assignments {
            let entry = lookup.by_control.entry(a.control.as_str()).or_default();
            match a.system_id {
                None => entry.0.push(a),
                Some(system) => entry.1.entry(system).or_default().push(a),
            }
        }
        for c in &self.classes {
            lookup
                .classes
                .insert((c.control.as_str(), c.system_id), c.class);
        }
        lookup
    }

    /// Every gap, conflict and outsider for the controls in scope and every
    /// pending or active linked system, sorted.
    pub fn gaps(&self, catalogue: &[String], platform: &PlatformView) -> Vec<Gap> {
        let members = platform.members();
        let lookup = self.lookup();
        let mut gaps = Vec::new();
        for control in self.scope(catalogue) {
            for &(system, owner) in &platform.systems {
                let e = lookup.effective(control, system);
                let mut push = |kind: GapKind, organizations: Vec<Uuid>| {
                    gaps.push(Gap {
                        control: control.to_owned(),
                        system_id: system,
                        kind,
                        organizations,
                    })
                };
                match e.accountable.len() {
                    0 => push(GapKind::NoAccountable, vec![]),
                    1 => {}
                    _ => push(GapKind::ConflictingAccountable, e.accountable.clone()),
                }
                if e.responsible.is_empty() {
                    push(GapKind::NoResponsible, vec![]);
                }
                let outsiders: BTreeSet<Uuid> = e
                    .responsible
                    .iter()
                    .chain(&e.accountable)
                    .chain(&e.consulted)
                    .chain(&e.informed)
                    .filter(|org| !members.contains(org))
                    .copied()
                    .collect();
                if !outsiders.is_empty() {
                    push(GapKind::Outsider, outsiders.into_iter().collect());
                }
                match e.class {
                    Some(ResponsibilityClass::Own)
                        if !e.responsible.is_empty() && !e.responsible.contains(&owner) =>
                    {
                        push(GapKind::ClassMismatch, vec![owner])
                    }
                    Some(ResponsibilityClass::Provided)
                        if !e.responsible.is_empty()
                            && !e.responsible.contains(&platform.operator_org_id) =>
                    {
                        push(GapKind::ClassMismatch, vec![platform.operator_org_id])
                    }
                    _ => {}
                }
            }
        }
        gaps.sort();
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        catalogue: Vec<String>,
        platform: PlatformView,
        operator: Uuid,
        a: Uuid,
        b: Uuid,
        sys_a: Uuid,
        sys_b: Uuid,
    }

    fn world() -> World {
        let (operator, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (platform_id, sys_a, sys_b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        World {
            catalogue: vec!["access-control".into(), "backup-recovery".into()],
            platform: PlatformView {
                platform_id,
                operator_org_id: operator,
                systems: vec![(sys_a, a), (sys_b, b)],
            },
            operator,
            a,
            b,
            sys_a,
            sys_b,
        }
    }

    fn assign(
        control: &str,
        system_id: Option<Uuid>,
        organization_id: Uuid,
        role: RaciRole,
    ) -> Assignment {
        Assignment {
            control: control.into(),
            system_id,
            organization_id,
            role,
        }
    }

    fn kinds(gaps: &[Gap]) -> Vec<(&str, Uuid, GapKind)> {
        gaps.iter()
            .map(|g| (g.control.as_str(), g.system_id, g.kind))
            .collect()
    }

    #[test]
    fn an_empty_matrix_has_no_accountable_and_no_responsible_for_every_control_and_system() {
        let w = world();
        let gaps = Matrix::default().gaps(&w.catalogue, &w.platform);
        assert_eq!(gaps.len(), 2 * 2 * 2);
        assert!(
            gaps.iter()
                .all(|g| matches!(g.kind, GapKind::NoAccountable | GapKind::NoResponsible))
        );
    }

    #[test]
    fn platform_wide_accountability_with_per_system_responsibility_closes_every_gap() {
        let w = world();
        let mut m = Matrix {
            controls: Some(vec!["access-control".into()]),
            ..Matrix::default()
        };
        m.assignments.push(assign(
            "access-control",
            None,
            w.operator,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "access-control",
            Some(w.sys_a),
            w.a,
            RaciRole::Responsible,
        ));
        m.assignments.push(assign(
            "access-control",
            Some(w.sys_b),
            w.b,
            RaciRole::Responsible,
        ));
        assert_eq!(m.gaps(&w.catalogue, &w.platform), vec![]);
        let e = m.effective("access-control", w.sys_a);
        assert_eq!(e.accountable, vec![w.operator]);
        assert_eq!(e.responsible, vec![w.a]);
    }

    #[test]
    fn a_missing_responsible_on_one_system_is_a_gap_for_that_system_only() {
        let w = world();
        let mut m = Matrix {
            controls: Some(vec!["access-control".into()]),
            ..Matrix::default()
        };
        m.assignments.push(assign(
            "access-control",
            None,
            w.operator,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "access-control",
            Some(w.sys_a),
            w.a,
            RaciRole::Responsible,
        ));
        assert_eq!(
            kinds(&m.gaps(&w.catalogue, &w.platform)),
            vec![("access-control", w.sys_b, GapKind::NoResponsible)]
        );
    }

    #[test]
    fn two_accountable_organisations_are_a_conflict_naming_both() {
        let w = world();
        let mut m = Matrix {
            controls: Some(vec!["backup-recovery".into()]),
            ..Matrix::default()
        };
        m.assignments.push(assign(
            "backup-recovery",
            None,
            w.operator,
            RaciRole::Responsible,
        ));
        m.assignments.push(assign(
            "backup-recovery",
            Some(w.sys_a),
            w.a,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "backup-recovery",
            Some(w.sys_a),
            w.operator,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "backup-recovery",
            None,
            w.operator,
            RaciRole::Accountable,
        ));
        let gaps = m.gaps(&w.catalogue, &w.platform);
        assert_eq!(
            kinds(&gaps),
            vec![("backup-recovery", w.sys_a, GapKind::ConflictingAccountable)]
        );
        let mut expected = vec![w.a, w.operator];
        expected.sort();
        assert_eq!(gaps[0].organizations, expected);
    }

    #[test]
    fn an_organisation_not_on_the_platform_is_reported_as_an_outsider() {
        let w = world();
        let stranger = Uuid::now_v7();
        let mut m = Matrix {
            controls: Some(vec!["access-control".into()]),
            ..Matrix::default()
        };
        m.assignments.push(assign(
            "access-control",
            None,
            w.operator,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "access-control",
            None,
            stranger,
            RaciRole::Responsible,
        ));
        let gaps = m.gaps(&w.catalogue, &w.platform);
        assert_eq!(
            kinds(&gaps),
            vec![
                ("access-control", w.sys_a.min(w.sys_b), GapKind::Outsider),
                ("access-control", w.sys_a.max(w.sys_b), GapKind::Outsider)
            ]
        );
        assert!(gaps.iter().all(|g| g.organizations == vec![stranger]));
    }

    #[test]
    fn a_class_of_own_without_the_owner_responsible_is_a_mismatch() {
        let w = world();
        let mut m = Matrix {
            controls: Some(vec!["access-control".into()]),
            ..Matrix::default()
        };
        m.assignments.push(assign(
            "access-control",
            None,
            w.operator,
            RaciRole::Accountable,
        ));
        m.assignments.push(assign(
            "access-control",
            None,
            w.operator,
            RaciRole::Responsible,
        ));
        m.classes.push(ClassEntry {
            control: "access-control".into(),
            system_id: w.sys_a,
            class: ResponsibilityClass::Own,
        });
        m.classes.push(ClassEntry {
            control: "access-control".into(),
            system_id: w.sys_b,
            class: ResponsibilityClass::Provided,
        });
        assert_eq!(
            kinds(&m.gaps(&w.catalogue, &w.platform)),
            vec![("access-control", w.sys_a, GapKind::ClassMismatch)]
        );
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let w = world();
        let catalogue: HashSet<String> = w.catalogue.iter().cloned().collect();
        let mut m = Matrix::default();
        m.assignments
            .push(assign("access-control", None, w.a, RaciRole::Responsible));
        m.assignments
            .push(assign("nope", None, w.a, RaciRole::Responsible));
        assert_eq!(
            m.validate(&catalogue, &w.platform)
                .expect_err("refused")
                .field,
            "assignments[1].control"
        );
        m.assignments[1] = assign(
            "access-control",
            Some(Uuid::now_v7()),
            w.a,
            RaciRole::Responsible,
        );
        assert_eq!(
            m.validate(&catalogue, &w.platform)
                .expect_err("refused")
                .field,
            "assignments[1].system_id"
        );
        m.assignments[1] = m.assignments[0].clone();
        assert_eq!(
            m.validate(&catalogue, &w.platform)
                .expect_err("refused")
                .field,
            "assignments[1]"
        );
        m.assignments.pop();
        m.controls = Some(vec!["access-control".into(), "unknown".into()]);
        assert_eq!(
            m.validate(&catalogue, &w.platform)
                .expect_err("refused")
                .field,
            "controls[1]"
        );
        m.controls = None;
        m.classes.push(ClassEntry {
            control: "access-control".into(),
            system_id: w.platform.platform_id,
            class: ResponsibilityClass::Own,
        });
        assert_eq!(
            m.validate(&catalogue, &w.platform)
                .expect_err("refused")
                .field,
            "classes[0].system_id"
        );
    }
}
