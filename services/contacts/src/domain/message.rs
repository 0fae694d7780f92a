//! What a notification says, in Japanese and in English: every kind of
//! notice the service sends, what one organisation's copy adds to it (its
//! own systems at risk), and the wording of the link that answers it.
//!
//! Notices about incidents and advisories carry a TLP marking: their body
//! starts with the marking line, and under `red` neither title nor body says
//! anything but that something marked red concerns the reader (no titles,
//! systems, paths or message text), pointing to Renkei for the rest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::contact::{Condition, Language};
use super::tlp::Tlp;

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
        #[serde(default)]
        severity: String,
        #[serde(default)]
        tlp: String,
    },
    /// A coordination message between an incident's participants.
    CoordinationMessage {
        platform: String,
        incident_title: String,
        /// The sending organisation's name.
        from: String,
        /// `update`, `request`, `instruction`, `advisory`, `assistance_request`.
        kind: String,
        text: String,
        tlp: String,
        /// `ordinary` or `emergency`.
        urgency: String,
    },
    /// An advisory each organisation confirms having acted on.
    Advisory {
        /// None: every platform.
        platform: Option<String>,
        title: String,
        text: String,
        severity: String,
        tlp: String,
        act_by: Option<DateTime<Utc>>,
    },
    /// A playbook task of an incident passed its due time unfinished.
    TaskOverdue {
        platform: Option<String>,
        incident_title: String,
        task_title: String,
        control: String,
        due_at: DateTime<Utc>,
        /// The incident's marking, as last known here.
        tlp: String,
    },
    /// A report on an incident was not filed in time.
    ReportOverdue {
        platform: Option<String>,
        incident_title: String,
        /// `initial`, `follow_up` or `final`.
        kind: String,
        due_at: DateTime<Utc>,
        tlp: String,
    },
    /// An organisation has not confirmed an advisory by its date.
    AdvisoryUnconfirmed {
        platform: Option<String>,
        title: String,
        act_by: DateTime<Utc>,
        /// The advisory's marking, as known here.
        #[serde(default)]
        tlp: String,
    },
    /// A report on an incident was filed with the central bodies.
    ReportFiled {
        platform: String,
        incident_title: String,
        kind: String,
        tlp: String,
        /// The filing organisation's name.
        filed_by: String,
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

/// What one organisation's copy of a notice adds: its own part, which no
/// other organisation reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detail", rename_all = "snake_case")]
pub enum Detail {
    /// The organisation's systems an incident may reach, and how (empty
    /// under TLP `red`, which withholds them).
    AtRisk { systems: Vec<ReachedSystem> },
    /// Told for coordination (the platform operator, a central body), not
    /// because its own systems are at risk.
    Informed,
}

/// One system at risk and the systems an incident can take to it, from the
/// incident's system to this one, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachedSystem {
    pub name: String,
    #[serde(default)]
    pub path: Vec<String>,
}

/// What the link in a message does, and how it is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The organisation acknowledges; its escalation stops.
    Acknowledge,
    /// The organisation confirms having acted (advisories).
    Confirm,
    /// Nothing is asked; the link records that it was read.
    Optional,
}

impl Answer {
    /// The line above the link.
    pub fn prompt(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Answer::Acknowledge, Language::Ja) => {
                "受領確認（このリンクを開き、確認ボタンを押してください）"
            }
            (Answer::Acknowledge, Language::En) => {
                "Acknowledge (open this link and press the button)"
            }
            (Answer::Confirm, Language::Ja) => {
                "対応確認（このリンクを開き、確認ボタンを押してください）"
            }
            (Answer::Confirm, Language::En) => "Confirm (open this link and press the button)",
            (Answer::Optional, Language::Ja) => {
                "受領確認は不要です（このリンクから既読を記録できます）"
            }
            (Answer::Optional, Language::En) => {
                "No acknowledgement is needed (this link records that you read it)"
            }
        }
    }

    /// The button of the page behind the link.
    pub fn button(self) -> &'static str {
        match self {
            Answer::Acknowledge => "受領を確認する / Acknowledge",
            Answer::Confirm => "対応を確認する / Confirm",
            Answer::Optional => "既読にする / Mark as read",
        }
    }

    /// What pressing the button does.
    pub fn explain(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Answer::Acknowledge, Language::Ja) => {
                "ボタンを押すと、貴組織として受領を確認し、エスカレーションを止めます。"
            }
            (Answer::Acknowledge, Language::En) => {
                "Pressing the button acknowledges for your organisation and stops the escalation."
            }
            (Answer::Confirm, Language::Ja) => {
                "ボタンを押すと、貴組織としてこの注意喚起への対応を確認します。"
            }
            (Answer::Confirm, Language::En) => {
                "Pressing the button confirms, for your organisation, that this advisory has been acted on."
            }
            (Answer::Optional, Language::Ja) => {
                "受領確認は求められていません。ボタンを押すと既読として記録します。"
            }
            (Answer::Optional, Language::En) => {
                "No acknowledgement was asked for; pressing the button records that your organisation read it."
            }
        }
    }

    /// How an answer already recorded is called (`… at <time> by <whom>`).
    pub fn recorded(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Answer::Acknowledge, Language::Ja) => "受領確認済みです",
            (Answer::Acknowledge, Language::En) => "Acknowledged",
            (Answer::Confirm, Language::Ja) => "対応確認済みです",
            (Answer::Confirm, Language::En) => "Confirmed",
            (Answer::Optional, Language::Ja) => "既読として記録済みです",
            (Answer::Optional, Language::En) => "Recorded as read",
        }
    }

    /// The headline once answered.
    pub fn done(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Answer::Acknowledge, Language::Ja) => "受領を確認しました",
            (Answer::Acknowledge, Language::En) => "Acknowledged. The escalation has stopped.",
            (Answer::Confirm, Language::Ja) => "対応を確認しました",
            (Answer::Confirm, Language::En) => "Confirmed.",
            (Answer::Optional, Language::Ja) => "既読として記録しました",
            (Answer::Optional, Language::En) => "Recorded as read.",
        }
    }
}

/// Systems listed per organisation at most; the rest are counted.
const SHOWN_SYSTEMS: usize = 20;

impl Notice {
    /// Under which condition its recipients are chosen.
    pub fn condition(&self) -> Condition {
        match self {
            Notice::RulesProposed { .. }
            | Notice::RulesReminder { .. }
            | Notice::AcceptanceRequested { .. }
            | Notice::Advisory { .. }
            | Notice::AdvisoryUnconfirmed { .. } => Condition::Ordinary,
            Notice::SpreadRisk { .. }
            | Notice::IncidentStatus { .. }
            | Notice::TaskOverdue { .. }
            | Notice::ReportOverdue { .. }
            | Notice::ReportFiled { .. }
            | Notice::Drill { .. } => Condition::Emergency,
            Notice::CoordinationMessage { urgency, .. } => {
                if urgency == "emergency" {
                    Condition::Emergency
                } else {
                    Condition::Ordinary
                }
            }
            Notice::Unacknowledged {
                emergency: true, ..
            } => Condition::Emergency,
            Notice::Unacknowledged {
                emergency: false, ..
            } => Condition::Ordinary,
        }
    }

    /// The TLP marking of a notice about an incident or an advisory; none
    /// for the others.
    pub fn tlp(&self) -> Option<Tlp> {
        match self {
            Notice::SpreadRisk { tlp, .. }
            | Notice::IncidentStatus { tlp, .. }
            | Notice::CoordinationMessage { tlp, .. }
            | Notice::Advisory { tlp, .. }
            | Notice::TaskOverdue { tlp, .. }
            | Notice::ReportOverdue { tlp, .. }
            | Notice::AdvisoryUnconfirmed { tlp, .. }
            | Notice::ReportFiled { tlp, .. } => Some(Tlp::parse(tlp)),
            Notice::RulesProposed { .. }
            | Notice::RulesReminder { .. }
            | Notice::AcceptanceRequested { .. }
            | Notice::Drill { .. }
            | Notice::Unacknowledged { .. } => None,
        }
    }

    fn red(&self) -> bool {
        self.tlp().is_some_and(Tlp::withholds_detail)
    }

    /// What the link in its messages does: advisories are confirmed, other
    /// notices acknowledged, and nothing is asked when no acknowledgement
    /// is required.
    pub fn answer(&self, ack_required: bool) -> Answer {
        if !ack_required {
            Answer::Optional
        } else if matches!(self, Notice::Advisory { .. }) {
            Answer::Confirm
        } else {
            Answer::Acknowledge
        }
    }

    /// The title, as a mail subject or a webhook's `title`.
    pub fn title(&self, lang: Language) -> String {
        use Language::{En, Ja};
        let red = self.red();
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
            (Notice::SpreadRisk { severity, .. }, Ja) if red => format!(
                "【緊急・波及のおそれ・TLP:RED】貴組織に関わるインシデント（重大度: {}）",
                severity_ja(severity)
            ),
            (Notice::SpreadRisk { severity, .. }, En) if red => format!(
                "[EMERGENCY - may spread - TLP:RED] An incident concerns your organisation (severity: {severity})"
            ),
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
            (Notice::IncidentStatus { .. }, Ja) if red => {
                "【インシデント続報・TLP:RED】貴組織に関わるインシデントの状況更新".to_owned()
            }
            (Notice::IncidentStatus { .. }, En) if red => {
                "[Incident update - TLP:RED] An incident concerning your organisation moved on"
                    .to_owned()
            }
            (Notice::IncidentStatus { title, to, .. }, Ja) => {
                format!("【インシデント続報】{title}: {}", status_ja(to))
            }
            (Notice::IncidentStatus { title, to, .. }, En) => {
                format!("[Incident update] {title}: {to}")
            }
            (Notice::CoordinationMessage { urgency, .. }, Ja) if red => format!(
                "【{}・TLP:RED】インシデントに関する貴組織宛ての連絡",
                message_label_ja(urgency)
            ),
            (Notice::CoordinationMessage { urgency, .. }, En) if red => format!(
                "[{} - TLP:RED] A message about an incident is addressed to your organisation",
                message_label_en(urgency)
            ),
            (
                Notice::CoordinationMessage {
                    incident_title,
                    kind,
                    urgency,
                    ..
                },
                Ja,
            ) => format!(
                "【{}・{}】{incident_title}",
                message_label_ja(urgency),
                message_kind_ja(kind)
            ),
            (
                Notice::CoordinationMessage {
                    incident_title,
                    kind,
                    urgency,
                    ..
                },
                En,
            ) => format!(
                "[{} - {}] {incident_title}",
                message_label_en(urgency),
                message_kind_en(kind)
            ),
            (Notice::Advisory { severity, .. }, Ja) if red => format!(
                "【注意喚起・TLP:RED】注意喚起が発出されました（重大度: {}）",
                severity_ja(severity)
            ),
            (Notice::Advisory { severity, .. }, En) if red => {
                format!("[Advisory - TLP:RED] An advisory was issued (severity: {severity})")
            }
            (
                Notice::Advisory {
                    title, severity, ..
                },
                Ja,
            ) => format!("【注意喚起】{title}（重大度: {}）", severity_ja(severity)),
            (
                Notice::Advisory {
                    title, severity, ..
                },
                En,
            ) => format!("[Advisory] {title} (severity: {severity})"),
            (Notice::TaskOverdue { .. }, Ja) if red => {
                "【期限超過・TLP:RED】インシデント対応タスクが期限を過ぎています".to_owned()
            }
            (Notice::TaskOverdue { .. }, En) if red => {
                "[Overdue - TLP:RED] An incident task is past its deadline".to_owned()
            }
            (
                Notice::TaskOverdue {
                    incident_title,
                    task_title,
                    ..
                },
                Ja,
            ) => format!("【期限超過】対応タスク「{task_title}」（{incident_title}）"),
            (
                Notice::TaskOverdue {
                    incident_title,
                    task_title,
                    ..
                },
                En,
            ) => format!("[Overdue] Task \"{task_title}\" ({incident_title})"),
            (Notice::ReportOverdue { kind, .. }, Ja) if red => format!(
                "【期限超過・TLP:RED】インシデントの{}が未提出です",
                report_kind_ja(kind)
            ),
            (Notice::ReportOverdue { kind, .. }, En) if red => format!(
                "[Overdue - TLP:RED] An incident's {} has not been filed",
                report_kind_en(kind)
            ),
            (
                Notice::ReportOverdue {
                    incident_title,
                    kind,
                    ..
                },
                Ja,
            ) => format!(
                "【期限超過】インシデント「{incident_title}」の{}が未提出です",
                report_kind_ja(kind)
            ),
            (
                Notice::ReportOverdue {
                    incident_title,
                    kind,
                    ..
                },
                En,
            ) => format!(
                "[Overdue] The {} on \"{incident_title}\" has not been filed",
                report_kind_en(kind)
            ),
            (Notice::AdvisoryUnconfirmed { .. }, Ja) if red => {
                "【確認期限超過・TLP:RED】注意喚起の対応確認がありません".to_owned()
            }
            (Notice::AdvisoryUnconfirmed { .. }, En) if red => {
                "[Overdue - TLP:RED] An advisory is not confirmed".to_owned()
            }
            (Notice::AdvisoryUnconfirmed { title, .. }, Ja) => {
                format!("【確認期限超過】注意喚起「{title}」の対応確認がありません")
            }
            (Notice::AdvisoryUnconfirmed { title, .. }, En) => {
                format!("[Overdue] Advisory \"{title}\" not confirmed")
            }
            (Notice::ReportFiled { kind, .. }, Ja) if red => format!(
                "【報告提出・TLP:RED】インシデントの{}が提出されました",
                report_kind_ja(kind)
            ),
            (Notice::ReportFiled { kind, .. }, En) if red => format!(
                "[Report filed - TLP:RED] An incident's {} was filed",
                report_kind_en(kind)
            ),
            (
                Notice::ReportFiled {
                    incident_title,
                    kind,
                    ..
                },
                Ja,
            ) => format!(
                "【報告提出】インシデント「{incident_title}」の{}",
                report_kind_ja(kind)
            ),
            (
                Notice::ReportFiled {
                    incident_title,
                    kind,
                    ..
                },
                En,
            ) => format!(
                "[Report filed] {} on \"{incident_title}\"",
                capitalised(report_kind_en(kind))
            ),
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

    /// The text of one organisation's message, before the link: the TLP
    /// marking line first when the notice is marked, then what it says,
    /// with the organisation's own `detail` when it has one.
    pub fn body(&self, lang: Language, detail: Option<&Detail>) -> String {
        let text = if self.red() {
            self.withheld(lang)
        } else {
            self.said(lang, detail)
        };
        match self.tlp() {
            Some(tlp) => format!("{}\n{text}", tlp.marking(lang)),
            None => text,
        }
    }

    /// The body of a notice marked `red`: that something so marked
    /// concerns the reader, where, how severe, and that the rest is in
    /// Renkei; nothing else.
    fn withheld(&self, lang: Language) -> String {
        use Language::{En, Ja};
        let see = match lang {
            Ja => "詳細はこのメッセージには記載していません。Renkei で確認してください。",
            En => "Details are withheld from this message; see them in Renkei.",
        };
        let severity_line = |severity: &str| -> String {
            if severity.is_empty() {
                String::new()
            } else {
                match lang {
                    Ja => format!("\n重大度: {}", severity_ja(severity)),
                    En => format!("\nSeverity: {severity}"),
                }
            }
        };
        let what = match (self, lang) {
            (
                Notice::SpreadRisk {
                    platform, severity, ..
                },
                Ja,
            ) => format!(
                "{platform} で、貴組織に関わる TLP:RED のインシデントが発生しました。{}",
                severity_line(severity)
            ),
            (
                Notice::SpreadRisk {
                    platform, severity, ..
                },
                En,
            ) => format!(
                "A TLP:RED incident on {platform} concerns your organisation.{}",
                severity_line(severity)
            ),
            (
                Notice::IncidentStatus {
                    platform, severity, ..
                },
                Ja,
            ) => format!(
                "{platform} の、貴組織に関わる TLP:RED のインシデントの状況が更新されました。{}",
                severity_line(severity)
            ),
            (
                Notice::IncidentStatus {
                    platform, severity, ..
                },
                En,
            ) => format!(
                "A TLP:RED incident on {platform} that concerns your organisation moved on.{}",
                severity_line(severity)
            ),
            (Notice::CoordinationMessage { platform, .. }, Ja) => format!(
                "{platform} のインシデントについて、貴組織宛ての TLP:RED の連絡があります。"
            ),
            (Notice::CoordinationMessage { platform, .. }, En) => format!(
                "A TLP:RED message about an incident on {platform} is addressed to your organisation."
            ),
            (
                Notice::Advisory {
                    platform, severity, ..
                },
                Ja,
            ) => format!(
                "{}に TLP:RED の注意喚起が発出されました。{}",
                scope_ja(platform.as_deref()),
                severity_line(severity)
            ),
            (
                Notice::Advisory {
                    platform, severity, ..
                },
                En,
            ) => format!(
                "A TLP:RED advisory was issued to {}.{}",
                scope_en(platform.as_deref()),
                severity_line(severity)
            ),
            (Notice::TaskOverdue { platform, .. }, Ja) => format!(
                "{}TLP:RED のインシデントの対応タスクが期限を過ぎても完了していません。",
                on_ja(platform.as_deref())
            ),
            (Notice::TaskOverdue { platform, .. }, En) => format!(
                "A task of a TLP:RED incident{} is past its deadline and not done.",
                on_en(platform.as_deref())
            ),
            (Notice::ReportOverdue { platform, kind, .. }, Ja) => format!(
                "{}TLP:RED のインシデントの{}が期限を過ぎても提出されていません。",
                on_ja(platform.as_deref()),
                report_kind_ja(kind)
            ),
            (Notice::ReportOverdue { platform, kind, .. }, En) => format!(
                "The {} on a TLP:RED incident{} is past its deadline and not filed.",
                report_kind_en(kind),
                on_en(platform.as_deref())
            ),
            (Notice::AdvisoryUnconfirmed { .. }, Ja) => {
                "TLP:RED の注意喚起について、確認期限を過ぎても貴組織の対応確認がありません。"
                    .to_owned()
            }
            (Notice::AdvisoryUnconfirmed { .. }, En) => {
                "Your organisation has not confirmed a TLP:RED advisory by its date.".to_owned()
            }
            (Notice::ReportFiled { platform, kind, .. }, Ja) => format!(
                "{platform} の TLP:RED のインシデントについて{}が提出されました。",
                report_kind_ja(kind)
            ),
            (Notice::ReportFiled { platform, kind, .. }, En) => format!(
                "A {} on a TLP:RED incident on {platform} was filed.",
                report_kind_en(kind)
            ),
            // Not marked: never red.
            _ => return self.said(lang, None),
        };
        format!("{what}\n{see}")
    }

    /// The body of a notice not marked `red`, without the marking line.
    fn said(&self, lang: Language, detail: Option<&Detail>) -> String {
        use Language::{En, Ja};
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
                jst(respond_by)
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
                jst(respond_by)
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
                jst(respond_by)
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
                jst(respond_by)
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
                    origin,
                    ..
                },
                Ja,
            ) => {
                let whom = match detail {
                    Some(Detail::Informed) => {
                        "貴組織には連携のためにお知らせしています（評価上、貴組織のシステムへの波及は見込まれていません）。"
                    }
                    _ => "貴組織のシステムに波及するおそれがあります。",
                };
                format!(
                    "{platform} に接続された「{origin}」でインシデント「{title}」が発生しました。{whom}\n重大度: {} / 種別: {category}{}\n直ちに内容を確認し、受領を確認してください。",
                    severity_ja(severity),
                    systems_at_risk(detail, Ja)
                )
            }
            (
                Notice::SpreadRisk {
                    platform,
                    title,
                    severity,
                    category,
                    origin,
                    ..
                },
                En,
            ) => {
                let whom = match detail {
                    Some(Detail::Informed) => {
                        "Your organisation is told for coordination; the assessment does not find its own systems at risk."
                    }
                    _ => "It may spread to your organisation's systems.",
                };
                format!(
                    "An incident, \"{title}\", hit \"{origin}\" on {platform}. {whom}\nSeverity: {severity} / category: {category}{}\nReview it now and acknowledge this message.",
                    systems_at_risk(detail, En)
                )
            }
            (
                Notice::IncidentStatus {
                    platform,
                    title,
                    from,
                    to,
                    ..
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
                    ..
                },
                En,
            ) => format!("The incident \"{title}\" on {platform} moved from {from} to {to}."),
            (
                Notice::CoordinationMessage {
                    platform,
                    incident_title,
                    from,
                    kind,
                    text,
                    ..
                },
                Ja,
            ) => format!(
                "{platform} のインシデント「{incident_title}」について、{from} から{}の連絡がありました。\n\n{text}",
                message_kind_ja(kind)
            ),
            (
                Notice::CoordinationMessage {
                    platform,
                    incident_title,
                    from,
                    kind,
                    text,
                    ..
                },
                En,
            ) => format!(
                "{from} sent a message ({}) about the incident \"{incident_title}\" on {platform}:\n\n{text}",
                message_kind_en(kind)
            ),
            (
                Notice::Advisory {
                    platform,
                    title,
                    text,
                    severity,
                    act_by,
                    ..
                },
                Ja,
            ) => format!(
                "{}に注意喚起「{title}」が発出されました。\n重大度: {}\n\n{text}\n\n{}",
                scope_ja(platform.as_deref()),
                severity_ja(severity),
                match act_by {
                    Some(t) => format!(
                        "{} までに対応し、下のリンクから貴組織の対応を確認してください。",
                        jst(t)
                    ),
                    None => "対応後、下のリンクから貴組織の対応を確認してください。".to_owned(),
                }
            ),
            (
                Notice::Advisory {
                    platform,
                    title,
                    text,
                    severity,
                    act_by,
                    ..
                },
                En,
            ) => format!(
                "An advisory, \"{title}\", was issued to {}.\nSeverity: {severity}\n\n{text}\n\n{}",
                scope_en(platform.as_deref()),
                match act_by {
                    Some(t) => format!(
                        "Act on it by {} and confirm for your organisation through the link below.",
                        jst(t)
                    ),
                    None => {
                        "Once acted on, confirm for your organisation through the link below."
                            .to_owned()
                    }
                }
            ),
            (
                Notice::TaskOverdue {
                    platform,
                    incident_title,
                    task_title,
                    control,
                    due_at,
                    ..
                },
                Ja,
            ) => format!(
                "{}インシデント「{incident_title}」の対応タスク「{task_title}」（管理策: {control}）が期限 {} を過ぎても完了していません。直ちに対応してください。",
                on_ja(platform.as_deref()),
                jst(due_at)
            ),
            (
                Notice::TaskOverdue {
                    platform,
                    incident_title,
                    task_title,
                    control,
                    due_at,
                    ..
                },
                En,
            ) => format!(
                "The task \"{task_title}\" (control: {control}) of the incident \"{incident_title}\"{} was due at {} and is not done. See to it now.",
                on_en(platform.as_deref()),
                jst(due_at)
            ),
            (
                Notice::ReportOverdue {
                    platform,
                    incident_title,
                    kind,
                    due_at,
                    ..
                },
                Ja,
            ) => format!(
                "{}インシデント「{incident_title}」の{}が期限 {} を過ぎても提出されていません。直ちに提出してください。",
                on_ja(platform.as_deref()),
                report_kind_ja(kind),
                jst(due_at)
            ),
            (
                Notice::ReportOverdue {
                    platform,
                    incident_title,
                    kind,
                    due_at,
                    ..
                },
                En,
            ) => format!(
                "The {} on the incident \"{incident_title}\"{} was due at {} and has not been filed. File it now.",
                report_kind_en(kind),
                on_en(platform.as_deref()),
                jst(due_at)
            ),
            (Notice::AdvisoryUnconfirmed { title, act_by, .. }, Ja) => format!(
                "注意喚起「{title}」について、確認期限 {} を過ぎても貴組織の対応確認がありません。注意喚起のメッセージのリンク、または Renkei から対応を確認してください。",
                jst(act_by)
            ),
            (Notice::AdvisoryUnconfirmed { title, act_by, .. }, En) => format!(
                "Your organisation has not confirmed the advisory \"{title}\", due by {}. Confirm it through the link in the advisory's message, or in Renkei.",
                jst(act_by)
            ),
            (
                Notice::ReportFiled {
                    platform,
                    incident_title,
                    kind,
                    filed_by,
                    ..
                },
                Ja,
            ) => format!(
                "{filed_by} が {platform} のインシデント「{incident_title}」の{}を提出しました。Renkei で内容を確認してください。",
                report_kind_ja(kind)
            ),
            (
                Notice::ReportFiled {
                    platform,
                    incident_title,
                    kind,
                    filed_by,
                    ..
                },
                En,
            ) => format!(
                "{filed_by} filed the {} on the incident \"{incident_title}\" on {platform}. Review it in Renkei.",
                report_kind_en(kind)
            ),
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

/// The whole text of one organisation's message: the body (with its own
/// `detail`), then the link and what it does.
pub fn message_text(
    notice: &Notice,
    detail: Option<&Detail>,
    lang: Language,
    ack_url: &str,
    ack_required: bool,
) -> String {
    format!(
        "{}\n\n{}:\n{ack_url}\n",
        notice.body(lang, detail),
        notice.answer(ack_required).prompt(lang)
    )
}

/// The lines listing an organisation's systems at risk and the path to
/// each (empty without any).
fn systems_at_risk(detail: Option<&Detail>, lang: Language) -> String {
    let Some(Detail::AtRisk { systems }) = detail else {
        return String::new();
    };
    if systems.is_empty() {
        return String::new();
    }
    let mut text = match lang {
        Language::Ja => "\n波及のおそれがある貴組織のシステムと経路:".to_owned(),
        Language::En => {
            "\nYour systems at risk, and the path the incident can take to each:".to_owned()
        }
    };
    for s in systems.iter().take(SHOWN_SYSTEMS) {
        text.push_str("\n- ");
        text.push_str(&s.name);
        if !s.path.is_empty() {
            text.push_str(": ");
            text.push_str(&s.path.join(" → "));
        }
    }
    if systems.len() > SHOWN_SYSTEMS {
        let more = systems.len() - SHOWN_SYSTEMS;
        text.push_str(&match lang {
            Language::Ja => format!("\n- ほか{more}システム（Renkei で確認してください）"),
            Language::En => format!("\n- and {more} more (see them in Renkei)"),
        });
    }
    text
}

fn jst(t: &DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d %H:%M JST")
        .to_string()
}

/// `<platform> の` before a sentence, when the platform is known.
fn on_ja(platform: Option<&str>) -> String {
    platform.map(|p| format!("{p} の")).unwrap_or_default()
}

/// ` on <platform>`, when the platform is known.
fn on_en(platform: Option<&str>) -> String {
    platform.map(|p| format!(" on {p}")).unwrap_or_default()
}

fn scope_ja(platform: Option<&str>) -> String {
    match platform {
        Some(p) => format!("{p} の参加組織"),
        None => "全基盤の参加組織".to_owned(),
    }
}

fn scope_en(platform: Option<&str>) -> String {
    match platform {
        Some(p) => format!("the organisations of {p}"),
        None => "the organisations of every platform".to_owned(),
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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

fn message_label_ja(urgency: &str) -> &'static str {
    if urgency == "emergency" {
        "緊急連絡"
    } else {
        "連絡"
    }
}

fn message_label_en(urgency: &str) -> &'static str {
    if urgency == "emergency" {
        "URGENT message"
    } else {
        "Incident message"
    }
}

fn message_kind_ja(kind: &str) -> &str {
    match kind {
        "update" => "状況共有",
        "request" => "依頼",
        "instruction" => "指示",
        "advisory" => "注意喚起",
        "assistance_request" => "支援要請",
        other => other,
    }
}

fn message_kind_en(kind: &str) -> &str {
    match kind {
        "assistance_request" => "request for assistance",
        other => other,
    }
}

fn report_kind_ja(kind: &str) -> &str {
    match kind {
        "initial" => "第一報",
        "follow_up" => "続報",
        "final" => "最終報告",
        other => other,
    }
}

fn report_kind_en(kind: &str) -> &str {
    match kind {
        "initial" => "initial report",
        "follow_up" => "follow-up report",
        "final" => "final report",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::{En, Ja};

    fn spread(tlp: &str) -> Notice {
        Notice::SpreadRisk {
            platform: "共通基盤".into(),
            title: "ランサムウェア感染".into(),
            severity: "critical".into(),
            category: "malware".into(),
            tlp: tlp.into(),
            origin: "A省 文書管理".into(),
        }
    }

    fn at_risk() -> Detail {
        Detail::AtRisk {
            systems: vec![ReachedSystem {
                name: "B庁 給付".into(),
                path: vec!["A省 文書管理".into(), "共通基盤".into(), "B庁 給付".into()],
            }],
        }
    }

    fn every_marked_notice(tlp: &str) -> Vec<Notice> {
        let t = Utc::now();
        vec![
            spread(tlp),
            Notice::IncidentStatus {
                platform: "P".into(),
                title: "Secret breach".into(),
                from: "declared".into(),
                to: "contained".into(),
                severity: "high".into(),
                tlp: tlp.into(),
            },
            Notice::CoordinationMessage {
                platform: "P".into(),
                incident_title: "Secret breach".into(),
                from: "Agency 0".into(),
                kind: "request".into(),
                text: "Isolate the secret gateway".into(),
                tlp: tlp.into(),
                urgency: "emergency".into(),
            },
            Notice::Advisory {
                platform: Some("P".into()),
                title: "Secret library flaw".into(),
                text: "Patch the secret library".into(),
                severity: "high".into(),
                tlp: tlp.into(),
                act_by: Some(t),
            },
            Notice::TaskOverdue {
                platform: Some("P".into()),
                incident_title: "Secret breach".into(),
                task_title: "Secret containment".into(),
                control: "RS.MI-1".into(),
                due_at: t,
                tlp: tlp.into(),
            },
            Notice::ReportOverdue {
                platform: Some("P".into()),
                incident_title: "Secret breach".into(),
                kind: "initial".into(),
                due_at: t,
                tlp: tlp.into(),
            },
            Notice::AdvisoryUnconfirmed {
                platform: None,
                title: "Secret library flaw".into(),
                act_by: t,
                tlp: tlp.into(),
            },
            Notice::ReportFiled {
                platform: "P".into(),
                incident_title: "Secret breach".into(),
                kind: "final".into(),
                tlp: tlp.into(),
                filed_by: "Agency 0".into(),
            },
        ]
    }

    #[test]
    fn every_notice_reads_in_both_languages_with_its_link() {
        let notice = spread("amber");
        assert!(notice.title(Ja).contains("緊急"));
        assert!(notice.title(En).contains("EMERGENCY"));
        let text = message_text(&notice, None, Ja, "http://x/ack/t", true);
        assert!(text.contains("A省 文書管理") && text.ends_with("http://x/ack/t\n"));
        assert!(text.starts_with("TLP:AMBER — "), "{text}");
        assert_eq!(notice.condition(), Condition::Emergency);
        let drill = Notice::Drill {
            platform: "P".into(),
            run: 2,
        };
        assert!(drill.title(Ja).contains("訓練"));
        assert!(drill.body(En, None).contains("not a real incident"));
        for (i, n) in every_marked_notice("amber").into_iter().enumerate() {
            for lang in [Ja, En] {
                let title = n.title(lang);
                let body = n.body(lang, None);
                assert!(!title.is_empty() && !body.is_empty(), "{n:?}");
                assert!(body.starts_with("TLP:AMBER"), "{body}");
            }
            assert!(n.title(Ja).starts_with('【'), "{}", n.title(Ja));
            assert!(n.title(En).starts_with('['), "{}", n.title(En));
            if i > 0 {
                assert!(n.title(Ja).contains("Secret"), "{}", n.title(Ja));
            }
        }
    }

    #[test]
    fn an_organisation_at_risk_reads_its_own_systems_and_paths() {
        let notice = spread("amber");
        let detail = at_risk();
        let ja = notice.body(Ja, Some(&detail));
        assert!(
            ja.contains("- B庁 給付: A省 文書管理 → 共通基盤 → B庁 給付"),
            "{ja}"
        );
        let en = notice.body(En, Some(&detail));
        assert!(en.contains("Your systems at risk"), "{en}");
        assert!(en.contains("A省 文書管理 → 共通基盤 → B庁 給付"), "{en}");
        let informed = notice.body(En, Some(&Detail::Informed));
        assert!(informed.contains("told for coordination"), "{informed}");
        assert!(!informed.contains("B庁"), "{informed}");
        assert!(notice.body(Ja, Some(&Detail::Informed)).contains("連携"));
    }

    #[test]
    fn red_notices_say_nothing_but_that_something_red_concerns_the_reader() {
        let notice = spread("red");
        for lang in [Ja, En] {
            let title = notice.title(lang);
            let text = message_text(&notice, Some(&at_risk()), lang, "http://x/ack/t", true);
            for secret in ["ランサムウェア", "A省", "B庁", "malware", "→"] {
                assert!(!title.contains(secret), "{title}");
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.starts_with("TLP:RED — "), "{text}");
            assert!(text.contains("共通基盤") && text.contains("http://x/ack/t"));
            assert!(title.contains("TLP:RED"), "{title}");
        }
        assert!(notice.body(Ja, None).contains("重大度: 緊急"));
        assert!(notice.body(En, None).contains("Severity: critical"));
        assert!(notice.body(En, None).contains("see them in Renkei"));
        for n in every_marked_notice("red") {
            for lang in [Ja, En] {
                let title = n.title(lang);
                let body = n.body(lang, None);
                assert!(!title.contains("Secret"), "{title}");
                assert!(!body.contains("Secret"), "{body}");
                assert!(body.starts_with("TLP:RED"), "{body}");
                assert!(body.contains("Renkei"), "{body}");
                assert!(!body.contains("Agency 0"), "{body}");
            }
        }
    }

    #[test]
    fn amber_strict_carries_its_marking_line_in_both_languages() {
        let notice = spread("amber+strict");
        assert!(
            notice
                .body(En, None)
                .starts_with("TLP:AMBER+STRICT — share only inside your organisation\n")
        );
        assert!(
            notice
                .body(Ja, None)
                .starts_with("TLP:AMBER+STRICT — 組織内限り\n")
        );
    }

    #[test]
    fn a_coordination_message_carries_its_text_sender_and_urgency() {
        let mut n = every_marked_notice("green").remove(2);
        assert_eq!(n.condition(), Condition::Emergency);
        assert!(
            n.title(Ja).starts_with("【緊急連絡・依頼】"),
            "{}",
            n.title(Ja)
        );
        assert!(n.title(En).starts_with("[URGENT message - request]"));
        let en = n.body(En, None);
        assert!(en.contains("Agency 0") && en.contains("Isolate the secret gateway"));
        assert!(n.body(Ja, None).contains("Isolate the secret gateway"));
        if let Notice::CoordinationMessage { urgency, .. } = &mut n {
            *urgency = "ordinary".into();
        }
        assert_eq!(n.condition(), Condition::Ordinary);
        assert!(n.title(Ja).starts_with("【連絡・依頼】"));
        let told = message_text(&n, None, En, "http://x/ack/t", false);
        assert!(told.contains("No acknowledgement is needed"), "{told}");
        assert!(message_text(&n, None, Ja, "u", false).contains("受領確認は不要です"));
    }

    #[test]
    fn an_advisory_is_ordinary_and_asks_to_confirm_by_its_date_in_jst() {
        let act_by = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let n = Notice::Advisory {
            platform: None,
            title: "OpenSSL flaw".into(),
            text: "Update OpenSSL".into(),
            severity: "high".into(),
            tlp: "clear".into(),
            act_by: Some(act_by),
        };
        assert_eq!(n.condition(), Condition::Ordinary);
        assert_eq!(n.answer(true), Answer::Confirm);
        assert_eq!(n.title(Ja), "【注意喚起】OpenSSL flaw（重大度: 高）");
        assert_eq!(n.title(En), "[Advisory] OpenSSL flaw (severity: high)");
        let ja = message_text(&n, None, Ja, "u", true);
        assert!(ja.contains("2026-12-01 18:00 JST"), "{ja}");
        assert!(ja.contains("対応確認（"), "{ja}");
        assert!(ja.contains("全基盤"), "{ja}");
        let en = message_text(&n, None, En, "u", true);
        assert!(en.contains("Confirm (open this link"), "{en}");
        assert!(en.contains("Update OpenSSL") && en.starts_with("TLP:CLEAR"));
        assert_eq!(spread("amber").answer(true), Answer::Acknowledge);
        assert!(Answer::Confirm.button().contains("Confirm"));
    }

    #[test]
    fn overdue_tasks_and_reports_are_emergencies_and_advisories_are_not() {
        let all = every_marked_notice("amber");
        let condition = |i: usize| all[i].condition();
        assert_eq!(condition(4), Condition::Emergency, "task overdue");
        assert_eq!(condition(5), Condition::Emergency, "report overdue");
        assert_eq!(condition(6), Condition::Ordinary, "advisory unconfirmed");
        assert_eq!(condition(7), Condition::Emergency, "report filed");
        assert!(all[4].body(Ja, None).contains("管理策: RS.MI-1"));
        assert!(all[4].body(En, None).contains("JST"));
        assert!(all[5].title(Ja).contains("第一報"), "{}", all[5].title(Ja));
        assert!(all[5].title(En).contains("initial report"));
        assert!(all[6].title(Ja).starts_with("【確認期限超過】"));
        assert!(all[7].title(En).starts_with("[Report filed] Final report"));
        assert!(all[7].body(Ja, None).contains("最終報告"));
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
        let title = n.title(En);
        assert!(
            title.contains("Agency 9") && !title.contains("Agency 10"),
            "{title}"
        );
        assert!(title.contains("and 2 more"), "{title}");
        assert!(n.body(Ja, None).contains("ほか2組織"));
        assert_eq!(n.tlp(), None);
    }

    #[test]
    fn rules_notices_are_ordinary_and_unmarked() {
        let n = Notice::RulesReminder {
            platform: "P".into(),
            version: 3,
            respond_by: Utc::now(),
        };
        assert_eq!(n.condition(), Condition::Ordinary);
        let body = n.body(Ja, None);
        assert!(body.contains("JST") && !body.contains("TLP"), "{body}");
    }

    #[test]
    fn a_stored_status_notice_without_a_marking_still_reads() {
        let old = serde_json::json!({"notice": "incident_status", "platform": "P",
            "title": "T", "from": "declared", "to": "closed"});
        let n: Notice = serde_json::from_value(old).expect("an old notice");
        assert_eq!(n.tlp(), Some(Tlp::Amber));
        assert!(n.body(En, None).contains("moved from declared to closed"));
    }
}
