//! The control catalogue: the security measure areas responsibilities are
//! assigned for. The default catalogue follows the areas of the government
//! common standard; operators add their own.

use super::Invalid;

/// One control of the default catalogue.
#[derive(Debug, Clone, Copy)]
pub struct DefaultControl {
    pub id: &'static str,
    pub area: &'static str,
    pub title_ja: &'static str,
    pub title_en: &'static str,
}

const fn c(
    id: &'static str,
    area: &'static str,
    title_ja: &'static str,
    title_en: &'static str,
) -> DefaultControl {
    DefaultControl {
        id,
        area,
        title_ja,
        title_en,
    }
}

/// Loaded at first start (and on every start, without touching controls
/// that already exist).
pub const DEFAULT_CATALOGUE: &[DefaultControl] = &[
    c(
        "organization-management",
        "organization",
        "情報セキュリティ対策の組織・管理",
        "Information security organisation and management",
    ),
    c(
        "information-handling",
        "information",
        "情報の取扱い",
        "Handling of information",
    ),
    c(
        "outsourcing-cloud",
        "outsourcing",
        "外部委託・クラウドサービスの利用",
        "Outsourcing and cloud services",
    ),
    c(
        "lifecycle-planning",
        "life_cycle",
        "情報システムの企画・要件定義",
        "System life cycle: planning",
    ),
    c(
        "lifecycle-procurement",
        "life_cycle",
        "情報システムの調達・構築",
        "System life cycle: procurement and construction",
    ),
    c(
        "lifecycle-operation",
        "life_cycle",
        "情報システムの運用・保守",
        "System life cycle: operation and maintenance",
    ),
    c(
        "lifecycle-disposal",
        "life_cycle",
        "情報システムの更改・廃棄",
        "System life cycle: renewal and disposal",
    ),
    c(
        "identification-authentication",
        "technical",
        "主体認証・識別",
        "Identification and authentication",
    ),
    c(
        "access-control",
        "technical",
        "アクセス制御",
        "Access control",
    ),
    c(
        "logging-monitoring",
        "technical",
        "ログの取得・監視",
        "Logging and monitoring",
    ),
    c(
        "vulnerability-patch",
        "technical",
        "脆弱性対策・パッチ管理",
        "Vulnerability and patch management",
    ),
    c(
        "malware-protection",
        "technical",
        "不正プログラム対策",
        "Malware protection",
    ),
    c(
        "network-boundary",
        "technical",
        "ネットワーク・境界防御",
        "Network and boundary protection",
    ),
    c(
        "encryption-keys",
        "technical",
        "暗号・鍵管理",
        "Encryption and key management",
    ),
    c(
        "backup-recovery",
        "operation",
        "バックアップ・復旧",
        "Backup and recovery",
    ),
    c(
        "physical-security",
        "physical",
        "物理的セキュリティ",
        "Physical security",
    ),
    c(
        "incident-response",
        "operation",
        "情報セキュリティインシデント対応",
        "Incident response",
    ),
    c(
        "education-training",
        "organization",
        "教育・訓練",
        "Education and training",
    ),
];

/// A control id: 2–64 characters of lower-case ASCII letters, digits, `-`
/// and `.`, starting with a letter. Stable, so rules and matrices can cite it.
pub fn valid_control_id(field: &str, value: &str) -> Result<String, Invalid> {
    let ok_len = (2..=64).contains(&value.len());
    let ok_start = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok_len && ok_start && ok_chars {
        Ok(value.to_owned())
    } else {
        Err(Invalid::new(
            field,
            "must be 2-64 characters of a-z, 0-9, `-` and `.`, starting with a letter",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_default_catalogue_covers_the_common_standard_with_unique_valid_ids() {
        assert!(DEFAULT_CATALOGUE.len() >= 15);
        let ids: HashSet<&str> = DEFAULT_CATALOGUE.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), DEFAULT_CATALOGUE.len());
        for control in DEFAULT_CATALOGUE {
            assert_eq!(
                valid_control_id("id", control.id).as_deref(),
                Ok(control.id)
            );
            assert!(!control.title_ja.is_empty() && !control.title_en.is_empty());
        }
        for needed in ["incident-response", "access-control", "education-training"] {
            assert!(ids.contains(needed), "{needed}");
        }
    }

    #[test]
    fn control_ids_are_plain_lower_case_words() {
        assert!(valid_control_id("id", "x").is_err());
        assert!(valid_control_id("id", "Access").is_err());
        assert!(valid_control_id("id", "9lives").is_err());
        assert!(valid_control_id("id", "a b").is_err());
        assert!(valid_control_id("id", "ops.custom-1").is_ok());
    }
}
