//! Organisations and what kind of body each is.

use super::{Invalid, parse_word};

/// The kinds of organisation the guidance names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgKind {
    PlatformOperator,
    GovernmentAgency,
    IncorporatedAdministrativeAgency,
    DesignatedCorporation,
    CentralBody,
}

impl OrgKind {
    pub const ALL: [OrgKind; 5] = [
        OrgKind::PlatformOperator,
        OrgKind::GovernmentAgency,
        OrgKind::IncorporatedAdministrativeAgency,
        OrgKind::DesignatedCorporation,
        OrgKind::CentralBody,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::PlatformOperator => "platform_operator",
            OrgKind::GovernmentAgency => "government_agency",
            OrgKind::IncorporatedAdministrativeAgency => "incorporated_administrative_agency",
            OrgKind::DesignatedCorporation => "designated_corporation",
            OrgKind::CentralBody => "central_body",
        }
    }

    pub fn parse(field: &'static str, value: &str) -> Result<OrgKind, Invalid> {
        parse_word(field, value, &OrgKind::ALL, OrgKind::as_str)
    }

    /// Incorporated administrative agencies and designated corporations are
    /// overseen by a competent government agency.
    pub fn needs_competent_agency(self) -> bool {
        matches!(
            self,
            OrgKind::IncorporatedAdministrativeAgency | OrgKind::DesignatedCorporation
        )
    }
}

/// Checks the competent-agency rule: required exactly for the kinds that
/// have one, and it must be a government agency.
pub fn check_competent_agency(
    kind: OrgKind,
    competent: Option<OrgKind>,
    given: bool,
) -> Result<(), Invalid> {
    const FIELD: &str = "competent_org_id";
    match (kind.needs_competent_agency(), given, competent) {
        (true, false, _) => Err(Invalid::new(
            FIELD,
            format!("is required for a {}", kind.as_str()),
        )),
        (true, true, None) => Err(Invalid::new(FIELD, "names no known organisation")),
        (true, true, Some(OrgKind::GovernmentAgency)) => Ok(()),
        (true, true, Some(_)) => Err(Invalid::new(FIELD, "must be a government_agency")),
        (false, true, _) => Err(Invalid::new(
            FIELD,
            format!(
                "applies only to incorporated administrative agencies and designated corporations, not a {}",
                kind.as_str()
            ),
        )),
        (false, false, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competent_agency_is_required_exactly_where_the_guidance_asks() {
        use OrgKind::*;
        assert!(check_competent_agency(DesignatedCorporation, None, false).is_err());
        assert!(
            check_competent_agency(DesignatedCorporation, Some(GovernmentAgency), true).is_ok()
        );
        assert!(
            check_competent_agency(DesignatedCorporation, Some(PlatformOperator), true).is_err()
        );
        assert!(check_competent_agency(GovernmentAgency, Some(GovernmentAgency), true).is_err());
        assert!(check_competent_agency(CentralBody, None, false).is_ok());
    }

    #[test]
    fn unknown_kind_lists_the_allowed_ones() {
        let err = OrgKind::parse("kind", "ministry").expect_err("unknown");
        assert_eq!(err.field, "kind");
        assert!(err.reason.contains("government_agency"));
    }
}
