//! Traffic Light Protocol markings: the line every marked message carries,
//! and whom a marking lets a message reach.

use super::contact::{ContactRole, Language};

/// A TLP 2.0 marking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    /// The marking as events carry it (`clear`, `green`, `amber`,
    /// `amber+strict`, `red`; `white` is TLP 1.0's `clear`). An empty or
    /// unknown marking counts as `amber`: limited disclosure, the usual one
    /// for incident information, rather than none.
    pub fn parse(value: &str) -> Tlp {
        match value.trim().to_ascii_lowercase().as_str() {
            "clear" | "white" => Tlp::Clear,
            "green" => Tlp::Green,
            "amber+strict" | "amber_strict" | "amber-strict" => Tlp::AmberStrict,
            "red" => Tlp::Red,
            _ => Tlp::Amber,
        }
    }

    /// `TLP:AMBER+STRICT` and so on.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }

    /// The first line of a marked message: the label and what it allows.
    pub fn marking(self, lang: Language) -> String {
        let rule = match (self, lang) {
            (Tlp::Clear, Language::Ja) => "共有制限なし",
            (Tlp::Clear, Language::En) => "may be shared without restriction",
            (Tlp::Green, Language::Ja) => "関係コミュニティ内で共有可（一般公開不可）",
            (Tlp::Green, Language::En) => "share within the community, not publicly",
            (Tlp::Amber, Language::Ja) => "組織内および対応に必要な関係者に限り共有可",
            (Tlp::Amber, Language::En) => {
                "share only inside your organisation and with those who need to know to act"
            }
            (Tlp::AmberStrict, Language::Ja) => "組織内限り",
            (Tlp::AmberStrict, Language::En) => "share only inside your organisation",
            (Tlp::Red, Language::Ja) => "受信者限り・転送不可",
            (Tlp::Red, Language::En) => "for the named recipients only; do not forward",
        };
        format!("{} — {rule}", self.label())
    }

    /// Whether a contact with `role` may receive a message so marked:
    /// `red` reaches only the named emergency contacts (CISO, CSIRT);
    /// `amber+strict` only the organisation's own people, so not its
    /// liaisons (who may sit outside it); anything else every contact.
    pub fn admits(self, role: ContactRole) -> bool {
        match self {
            Tlp::Red => matches!(role, ContactRole::Ciso | ContactRole::Csirt),
            Tlp::AmberStrict => role != ContactRole::Liaison,
            Tlp::Clear | Tlp::Green | Tlp::Amber => true,
        }
    }

    /// Whether messages so marked carry no detail at all.
    pub fn withholds_detail(self) -> bool {
        self == Tlp::Red
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markings_parse_as_events_carry_them_and_unknown_ones_count_as_amber() {
        assert_eq!(Tlp::parse("red"), Tlp::Red);
        assert_eq!(Tlp::parse("AMBER+STRICT"), Tlp::AmberStrict);
        assert_eq!(Tlp::parse("white"), Tlp::Clear);
        assert_eq!(Tlp::parse(""), Tlp::Amber);
        assert_eq!(Tlp::parse("purple"), Tlp::Amber);
    }

    #[test]
    fn red_reaches_the_ciso_and_csirt_only_and_amber_strict_no_liaison() {
        for role in ContactRole::ALL {
            assert_eq!(
                Tlp::Red.admits(role),
                matches!(role, ContactRole::Ciso | ContactRole::Csirt),
                "{role:?}"
            );
            assert_eq!(
                Tlp::AmberStrict.admits(role),
                role != ContactRole::Liaison,
                "{role:?}"
            );
            assert!(Tlp::Amber.admits(role));
        }
    }

    #[test]
    fn the_marking_line_says_what_may_be_shared_in_both_languages() {
        assert_eq!(
            Tlp::AmberStrict.marking(Language::En),
            "TLP:AMBER+STRICT — share only inside your organisation"
        );
        assert_eq!(
            Tlp::AmberStrict.marking(Language::Ja),
            "TLP:AMBER+STRICT — 組織内限り"
        );
        assert!(Tlp::Red.marking(Language::Ja).starts_with("TLP:RED"));
    }
}
