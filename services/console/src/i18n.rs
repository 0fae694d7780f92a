//! The language and time zone a page is shown in: the user's own choice
//! (kept in the session), else the browser's `Accept-Language`; dates in
//! the user's time zone, else the installation's.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

/// The languages every page and message comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Ja, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The language's own name, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::Ja => "日本語",
            Lang::En => "English",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.split(['-', '_']).next()?.trim();
        if primary.eq_ignore_ascii_case("ja") {
            Some(Lang::Ja)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The best of ours for an `Accept-Language` header: the first we have
    /// by descending quality, English when none is.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return Lang::En;
        };
        let mut offered: Vec<(f32, usize, Lang)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let lang = Lang::parse(pieces.next()?.trim())?;
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (quality > 0.0).then_some((quality, i, lang))
            })
            .collect();
        offered.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        offered.first().map_or(Lang::En, |o| o.2)
    }

    /// The text of `key` in this language.
    pub fn t(self, key: &str) -> Cow<'static, str> {
        Cow::Owned(rust_i18n::t!(key, locale = self.code()).into_owned())
    }
}

/// A time zone by its IANA name, or `None`.
pub fn time_zone(name: &str) -> Option<chrono_tz::Tz> {
    name.parse().ok()
}

/// `at` as people read it in `tz`: `2026-11-27 15:04 JST`.
pub fn format_time(at: &DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_language_we_have() {
        assert_eq!(Lang::negotiate(Some("ja")), Lang::Ja);
        assert_eq!(Lang::negotiate(Some("ja-JP,ja;q=0.9,en;q=0.8")), Lang::Ja);
        assert_eq!(Lang::negotiate(Some("fr-FR,en;q=0.5,ja;q=0.7")), Lang::Ja);
        assert_eq!(Lang::negotiate(Some("en-GB,ja;q=0.2")), Lang::En);
        assert_eq!(Lang::negotiate(Some("ja;q=0,en")), Lang::En);
        assert_eq!(Lang::negotiate(Some("de, fr")), Lang::En);
        assert_eq!(Lang::negotiate(None), Lang::En);
    }

    #[test]
    fn every_text_exists_in_both_languages() {
        fn keys(prefix: &str, value: &serde_yaml_ng::Value, out: &mut Vec<String>) {
            match value {
                serde_yaml_ng::Value::Mapping(map) => {
                    for (k, v) in map {
                        let k = k.as_str().unwrap_or_default();
                        let path = if prefix.is_empty() {
                            k.to_owned()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        keys(&path, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let load = |name: &str| {
            let path = format!("{}/locales/{name}.yml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("locale file");
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
            let mut out = Vec::new();
            keys("", &value, &mut out);
            out.sort();
            out
        };
        let (ja, en) = (load("ja"), load("en"));
        assert!(
            en.len() > 50,
            "the English catalogue has {} texts",
            en.len()
        );
        assert_eq!(ja, en, "the Japanese and English catalogues differ in keys");
        // Terms Japanese writes as English does.
        let same = ["contact_role.ciso", "role.csirt", "contacts.webhook"];
        for key in en.iter().filter(|k| !same.contains(&k.as_str())) {
            assert_ne!(Lang::Ja.t(key), Lang::En.t(key), "{key} is not translated");
        }
    }

    #[test]
    fn times_are_shown_in_the_users_zone() {
        let at: DateTime<Utc> = "2026-11-27T06:30:00Z".parse().expect("time");
        let tokyo = time_zone("Asia/Tokyo").expect("zone");
        assert_eq!(format_time(&at, tokyo), "2026-11-27 15:30 JST");
        let london = time_zone("Europe/London").expect("zone");
        assert_eq!(format_time(&at, london), "2026-11-27 06:30 GMT");
        assert!(time_zone("Mars/Olympus").is_none());
    }
}
