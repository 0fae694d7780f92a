//! What a notification says, in Japanese and in English: every kind of
//! notice the service sends, and its wording.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::contact::{Condition, Language};

/// What a notification is about, with what its message needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    RulesProposed {
        platform: String,
        version: u32,
        title: String,
        respond_by: DateTime<Utc>,
    },
    RulesReminder {
        platform: String,
        version: u32,
        respond_by: DateTime<Utc>,
    },
    AcceptanceRequested {
        platform: String,
        version: u32,
    },
    SpreadRisk {
        platform: String,
        title: String,
        severity: String,
        category: String,
        tlp: String,
        origin: String,
    },
    IncidentStatus {
        platform: String,
        title: String,
        from: String,
        to: String,
    },
    Drill {
        platform: String,
        run: u32,
    },
    /// Nobody of some organisations acknowledged another notification.
    Unacknowledged {
        organizations: Vec<String>,
        title_ja: String,
        title_en: String,
        /// The condition of the notification nobody acknowledged: an
        /// ordinary notice left unanswered does not page anyone at night.
        emergency: bool,
    },
}

impl Notice {
    /// Under which condition its recipients are chosen.
    pub fn condition(&self) -> Condition {
        match self {
            Notice::RulesProposed { .. }
            | Notice::RulesReminder { .. }
            | Notice::AcceptanceRequested { .. } => Condition::Ordinary,
            Notice::SpreadRisk { .. } | Notice::IncidentStatus { .. } | Notice::Drill { .. } => {
                Condition::Emergency
            }
            Notice::Unacknowledged {
                emergency: true, ..
            } => Condition::Emergency,
            Notice::Unacknowledged {
                emergency: false, ..
            } => Condition::Ordinary,
        }
    }

    /// The title, as a mail subject or a webhook's `title`.
    pub fn title(&self, lang: Language) -> String {
        use Language::{En, Ja};
        match (self, lang) {
            (Notice::RulesProposed { version, title, .. }, Ja) => {
                format!("【共通ルール】第{version}版「{title}」への同意のお願い")
            }
            (Notice::RulesProposed { version, title, .. }, En) => {
                format!("[Common rules] Version {version} \"{title}\" awaits your decision")
            }
            (Notice::RulesReminder { version, .. }, Ja) => {
                format!("【共通ルール】第{version}版 回答期限のお知らせ")
            }
            (Notice::RulesReminder { version, .. }, En) => {
                format!("[Common rules] Reminder: version {version} awaits your decision")
            }
            (Notice::AcceptanceRequested { version, .. }, Ja) => {
                format!("【共通ルール】接続に先立ち第{version}版への同意が必要です")
            }
            (Notice::AcceptanceRequested { version, .. }, En) => {
                format!("[Common rules] Accept version {version} to connect your system")
            }
            (
                Notice::SpreadRisk {
                    title, severity, ..
                },
                Ja,
            ) => format!(
                "【緊急・波及のおそれ】{title}（重大度: {}）",
                severity_ja(severity)
            ),
            (
                Notice::SpreadRisk {
                    title, severity, ..
                },
                En,
            ) => format!("[EMERGENCY - may spread] {title} (severity: {severity})"),
            (Notice::IncidentStatus { title, to, .. }, Ja) => {
                format!("【インシデント続報】{title}: {}", status_ja(to))
            }
            (Notice::IncidentStatus { title, to, .. }, En) => {
                format!("[Incident update] {title}: {to}")
            }
            (Notice::Drill { run, .. }, Ja) => format!("【訓練】緊急連絡訓練（第{run}回）"),
            (Notice::Drill { run, .. }, En) => {
                format!("[DRILL] Emergency contact drill (run {run})")
            }
            (Notice::Unacknowledged { organizations, .. }, Ja) => {
                format!(
                    "【未応答】{} から応答がありません",
                    names(organizations, Ja)
                )
            }
            (Notice::Unacknowledged { organizations, .. }, En) => {
                format!(
                    "[No answer] {} did not acknowledge",
                    names(organizations, En)
                )
            }
        }
    }

    /// The text of the message, before the acknowledgement link.
    pub fn body(&self, lang: Language) -> String {
        use Language::{En, Ja};
        let when = |t: &DateTime<Utc>| {
            t.with_timezone(&chrono_tz::Asia::Tokyo)
                .format("%Y-%m-%d %H:%M JST")
                .to_string()
        };
        match (self, lang) {
            (
                Notice::RulesProposed {
                    platform,
                    version,
                    title,
                    respond_by,
                },
                Ja,
            ) => format!(
                "{platform} の共通ルール第{version}版「{title}」が提案されました。\n{} までに同意または異議をご回答ください。全組織の同意をもって施行されます。",
                when(respond_by)
            ),
            (
                Notice::RulesProposed {
                    platform,
                    version,
                    title,
                    respond_by,
                },
                En,
            ) => format!(
                "Version {version} of the common rules of {platform}, \"{title}\", has been proposed.\nPlease accept or object by {}. It comes into force only when every organisation accepts.",
                when(respond_by)
            ),
            (
                Notice::RulesReminder {
                    platform,
                    version,
                    respond_by,
                },
                Ja,
            ) => format!(
                "{platform} の共通ルール第{version}版について、貴組織の回答をまだ受け付けていません。回答期限は {} です。",
                when(respond_by)
            ),
            (
                Notice::RulesReminder {
                    platform,
                    version,
                    respond_by,
                },
                En,
            ) => format!(
                "Your organisation has not yet answered version {version} of the common rules of {platform}. The deadline is {}.",
                when(respond_by)
            ),
            (Notice::AcceptanceRequested { platform, version }, Ja) => format!(
                "貴組織のシステムを {platform} に接続するには、施行中の共通ルール第{version}版への同意が必要です。"
            ),
            (Notice::AcceptanceRequested { platform, version }, En) => format!(
                "To connect your system to {platform}, your organisation must accept version {version} of the common rules in force."
            ),
            (
                Notice::SpreadRisk {
                    platform,
                    title,
                    severity,
                    category,
                    tlp,
                    origin,
                },
                Ja,
            ) => format!(
                "{platform} に接続された「{origin}」でインシデント「{title}」が発生しました。貴組織のシステムに波及するおそれがあります。\n重大度: {} / 種別: {category} / TLP: {tlp}\n直ちに内容を確認し、受領を確認してください。",
                severity_ja(severity)
            ),
            (
                Notice::SpreadRisk {
                    platform,
                    title,
                    severity,
                    category,
                    tlp,
                    origin,
                },
                En,
            ) => format!(
                "An incident, \"{title}\", hit \"{origin}\" on {platform}. It may spread to your organisation's systems.\nSeverity: {severity} / category: {category} / TLP: {tlp}\nReview it now and acknowledge this message."
            ),
            (
                Notice::IncidentStatus {
                    platform,
                    title,
                    from,
                    to,
                },
                Ja,
            ) => format!(
                "{platform} のインシデント「{title}」の状況が「{}」から「{}」に変わりました。",
                status_ja(from),
                status_ja(to)
            ),
            (
                Notice::IncidentStatus {
                    platform,
                    title,
                    from,
                    to,
                },
                En,
            ) => format!("The incident \"{title}\" on {platform} moved from {from} to {to}."),
            (Notice::Drill { platform, .. }, Ja) => format!(
                "これは {platform} の緊急連絡訓練です。実際のインシデントではありません。下のリンクから受領を確認してください。"
            ),
            (Notice::Drill { platform, .. }, En) => format!(
                "This is an emergency contact drill of {platform}, not a real incident. Please acknowledge it through the link below."
            ),
            (
                Notice::Unacknowledged {
                    organizations,
                    title_ja,
                    ..
                },
                Ja,
            ) => format!(
                "「{title_ja}」について、{} のすべての連絡先とエスカレーション段階で応答がありませんでした。別の手段で連絡を取ってください。",
                names(organizations, Ja)
            ),
            (
                Notice::Unacknowledged {
                    organizations,
                    title_en,
                    ..
                },
                En,
            ) => format!(
                "Nobody at {} acknowledged \"{title_en}\" through any contact or escalation step. Reach them another way.",
                names(organizations, En)
            ),
        }
    }
}

/// The whole text of a message: body, then the acknowledgement link.
pub fn message_text(notice: &Notice, lang: Language, ack_url: &str) -> String {
    let prompt = match lang {
        Language::Ja => "受領確認（このリンクを開き、確認ボタンを押してください）",
        Language::En => "Acknowledge (open this link and press the button)",
    };
    format!("{}\n\n{prompt}:\n{ack_url}\n", notice.body(lang))
}

/// At most ten names, then how many more.
fn names(all: &[String], lang: Language) -> String {
    const SHOWN: usize = 10;
    let sep = match lang {
        Language::Ja => "、",
        Language::En => ", ",
    };
    let mut text = all
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(sep);
    if all.len() > SHOWN {
        let more = all.len() - SHOWN;
        text.push_str(&match lang {
            Language::Ja => format!(" ほか{more}組織"),
            Language::En => format!(" and {more} more"),
        });
    }
    text
}

fn severity_ja(s: &str) -> &str {
    match s {
        "low" => "低",
        "medium" => "中",
        "high" => "高",
        "critical" => "緊急",
        other => other,
    }
}

fn status_ja(s: &str) -> &str {
    match s {
        "declared" => "発生",
        "triaged" => "初動対応",
        "contained" => "封じ込め済み",
        "recovering" => "復旧中",
        "recovered" => "復旧",
        "closed" => "終結",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_reads_in_both_languages_with_its_link() {
        let notice = Notice::SpreadRisk {
            platform: "共通基盤".into(),
            title: "ランサムウェア感染".into(),
            severity: "critical".into(),
            category: "malware".into(),
            tlp: "amber".into(),
            origin: "A省 文書管理".into(),
        };
        assert!(notice.title(Language::Ja).contains("緊急"));
        assert!(notice.title(Language::En).contains("EMERGENCY"));
        let text = message_text(&notice, Language::Ja, "http://x/ack/t");
        assert!(text.contains("A省 文書管理") && text.ends_with("http://x/ack/t\n"));
        assert_eq!(notice.condition(), Condition::Emergency);
        let drill = Notice::Drill {
            platform: "P".into(),
            run: 2,
        };
        assert!(drill.title(Language::Ja).contains("訓練"));
        assert!(drill.body(Language::En).contains("not a real incident"));
    }

    #[test]
    fn an_unanswered_notice_names_the_silent_organisations_and_keeps_the_condition() {
        let many: Vec<String> = (0..12).map(|i| format!("Agency {i}")).collect();
        let n = Notice::Unacknowledged {
            organizations: many,
            title_ja: "規則".into(),
            title_en: "Rules".into(),
            emergency: false,
        };
        assert_eq!(n.condition(), Condition::Ordinary);
        let title = n.title(Language::En);
        assert!(
            title.contains("Agency 9") && !title.contains("Agency 10"),
            "{title}"
        );
        assert!(title.contains("and 2 more"), "{title}");
        assert!(n.body(Language::Ja).contains("ほか2組織"));
    }

    #[test]
    fn rules_notices_are_ordinary() {
        let n = Notice::RulesReminder {
            platform: "P".into(),
            version: 3,
            respond_by: Utc::now(),
        };
        assert_eq!(n.condition(), Condition::Ordinary);
        assert!(n.body(Language::Ja).contains("JST"));
    }
}
