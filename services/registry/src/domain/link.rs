//! Links between systems and the incident categories they propagate.

use super::{Invalid, parse_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Network,
    DataFlow,
    Identity,
    SharedInfrastructure,
    Operations,
}

impl LinkKind {
    pub const ALL: [LinkKind; 5] = [
        LinkKind::Network,
        LinkKind::DataFlow,
        LinkKind::Identity,
        LinkKind::SharedInfrastructure,
        LinkKind::Operations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Network => "network",
            LinkKind::DataFlow => "data_flow",
            LinkKind::Identity => "identity",
            LinkKind::SharedInfrastructure => "shared_infrastructure",
            LinkKind::Operations => "operations",
        }
    }

    pub fn parse(field: &'static str, value: &str) -> Result<LinkKind, Invalid> {
        parse_word(field, value, &LinkKind::ALL, LinkKind::as_str)
    }
}

/// Incident categories, shared with the emergency service.
pub use renkei_domain::Category;

/// A set of categories, stored as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u8);

impl CategorySet {
    pub fn from_mask(mask: i32) -> CategorySet {
        CategorySet((mask & 0x3f) as u8)
    }

    pub fn mask(self) -> i32 {
        i32::from(self.0)
    }

    pub fn contains(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn insert(&mut self, c: Category) {
        self.0 |= c.bit();
    }

    /// Parses a list, refusing unknown and repeated categories.
    pub fn parse(field: &'static str, values: &[String]) -> Result<CategorySet, Invalid> {
        let mut set = CategorySet::default();
        for (i, v) in values.iter().enumerate() {
            let c = Category::parse(field, v)
                .map_err(|e| Invalid::new(field, format!("item {i}: {}", e.reason)))?;
            if set.contains(c) {
                return Err(Invalid::new(field, format!("`{v}` is listed twice")));
            }
            set.insert(c);
        }
        Ok(set)
    }

    pub fn names(self) -> Vec<String> {
        Category::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(|c| c.as_str().to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_sets_round_trip_through_their_mask() {
        let set =
            CategorySet::parse("propagates", &["malware".into(), "outage".into()]).expect("valid");
        assert_eq!(CategorySet::from_mask(set.mask()), set);
        assert_eq!(set.names(), vec!["malware", "outage"]);
    }

    #[test]
    fn unknown_or_repeated_categories_are_refused() {
        assert!(CategorySet::parse("propagates", &["worm".into()]).is_err());
        assert!(CategorySet::parse("propagates", &["malware".into(), "malware".into()]).is_err());
    }
}
