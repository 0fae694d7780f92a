//! The rules version as a readable document (Markdown, and HTML rendered
//! from it): what an organisation files with its signed agreement. In
//! Japanese or English; times in Japan Standard Time for Japanese readers,
//! UTC for English ones.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use pulldown_cmark::{Event, Options, Parser, html};
use uuid::Uuid;

use super::matrix::Matrix;
use super::rules::RulesContent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// `ja` or `en`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Lang> {
        match value.trim().to_ascii_lowercase().as_str() {
            "ja" | "ja-jp" => Some(Lang::Ja),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        header
            .split(',')
            .filter_map(|part| part.split(';').next())
            .find_map(|tag| Lang::parse(tag.split('-').next().unwrap_or(tag)))
    }

    fn pick(self, ja: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }

    fn time(self, t: DateTime<Utc>) -> String {
        match self {
            Lang::Ja => {
                let jst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
                t.with_timezone(&jst)
                    .format("%Y-%m-%d %H:%M JST")
                    .to_string()
            }
            Lang::En => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// One organisation's acceptance, for the record.
#[derive(Debug, Clone)]
pub struct AcceptanceLine {
    pub organization_id: Uuid,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

/// Everything the document shows.
#[derive(Debug, Clone)]
pub struct DocumentInput<'a> {
    pub platform_name: &'a str,
    pub version: u32,
    pub state: &'a str,
    pub in_force_at: Option<DateTime<Utc>>,
    pub content: &'a RulesContent,
    /// The matrix version the rules refer to, with its number.
    pub matrix: Option<(u32, &'a Matrix)>,
    /// Control id → title in the reader's language, in catalogue order.
    pub controls: &'a [(String, String)],
    /// Linked systems on the platform (id, name), for the matrix rows.
    pub systems: &'a [(Uuid, String)],
    pub org_names: &'a HashMap<Uuid, String>,
    pub acceptances: &'a [AcceptanceLine],
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn org_name(input: &DocumentInput<'_>, id: &Uuid) -> String {
    input
        .org_names
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

fn names(input: &DocumentInput<'_>, ids: &[Uuid]) -> String {
    ids.iter()
        .map(|id| cell(&org_name(input, id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The document in Markdown.
pub fn markdown(input: &DocumentInput<'_>, lang: Lang) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let c = input.content;
    let _ = writeln!(out, "# {}\n", c.title.trim());
    let _ = writeln!(
        out,
        "- {}: {}",
        lang.pick("共通基盤", "Platform"),
        input.platform_name
    );
    let _ = writeln!(out, "- {}: {}", lang.pick("版", "Version"), input.version);
    let _ = writeln!(out, "- {}: `{}`", lang.pick("状態", "State"), input.state);
    if let Some(at) = input.in_force_at {
        let _ = writeln!(
            out,
            "- {}: {}",
            lang.pick("発効日時", "In force since"),
            lang.time(at)
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## {}\n", lang.pick("共通ルール", "Common rules"));
    let titles: HashMap<&str, &str> = input
        .controls
        .iter()
        .map(|(id, t)| (id.as_str(), t.as_str()))
        .collect();
    for rule in &c.rules {
        let _ = writeln!(out, "### {} {}\n", rule.id, rule.title);
        let _ = writeln!(out, "{}\n", rule.text.trim());
        if !rule.controls.is_empty() {
            let related: Vec<String> = rule
                .controls
                .iter()
                .map(|id| {
                    format!(
                        "{} (`{id}`)",
                        titles.get(id.as_str()).unwrap_or(&id.as_str())
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "*{}*: {}\n",
                lang.pick("関連する対策", "Related controls"),
                related.join(", ")
            );
        }
    }

    let _ = writeln!(
        out,
        "## {}\n",
        lang.pick("連絡・協力体制", "Cooperation system")
    );
    for (label, text) in [
        (
            lang.pick("平時", "Ordinary conditions"),
            &c.cooperation.ordinary,
        ),
        (
            lang.pick("緊急時", "Emergency conditions"),
            &c.cooperation.emergency,
        ),
    ] {
        let text = if text.trim().is_empty() {
            lang.pick("（記載なし）", "(not stated)")
        } else {
            text.trim()
        };
        let _ = writeln!(out, "### {label}\n\n{text}\n");
    }

    let _ = writeln!(
        out,
        "## {}\n",
        lang.pick("緊急時の対処", "Emergency measures")
    );
    if c.emergency_measures.is_empty() {
        let _ = writeln!(out, "{}\n", lang.pick("（記載なし）", "(not stated)"));
    }
    for measure in &c.emergency_measures {
        let _ = writeln!(out, "- {}", measure.trim());
    }
    out.push('\n');

    let _ = writeln!(
        out,
        "## {}\n",
        lang.pick("責任分界", "Responsibility demarcation")
    );
    match input.matrix {
        None => {
            let _ = writeln!(
                out,
                "{}\n",
                lang.pick(
                    "（責任分界表は参照されていません）",
                    "(no responsibility matrix referred to)"
                )
            );
        }
        Some((version, matrix)) => {
            let _ = writeln!(
                out,
                "{} {version}\n",
                lang.pick("責任分界表 版", "Responsibility matrix version")
            );
            let _ = writeln!(
                out,
                "| {} | {} | R | A | C | I | {} |",
                lang.pick("対策", "Control"),
                lang.pick("連携システム", "Linked system"),
                lang.pick("区分", "Class")
            );
            out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
            let ids: Vec<String> = input.controls.iter().map(|(id, _)| id.clone()).collect();
            let lookup = matrix.lookup();
            for control in matrix.scope(&ids) {
                let title = titles.get(control).copied().unwrap_or(control);
                for (system, system_name) in input.systems {
                    let e = lookup.effective(control, *system);
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        cell(title),
                        cell(system_name),
                        names(input, &e.responsible),
                        names(input, &e.accountable),
                        names(input, &e.consulted),
                        names(input, &e.informed),
                        e.class.map(|k| k.as_str()).unwrap_or("")
                    );
                }
            }
            out.push('\n');
        }
    }

    let _ = writeln!(
        out,
        "## {}\n",
        lang.pick("合意の記録", "Record of acceptance")
    );
    if input.acceptances.is_empty() {
        let _ = writeln!(out, "{}\n", lang.pick("（なし）", "(none yet)"));
    } else {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            lang.pick("組織", "Organisation"),
            lang.pick("決定者", "Decided by"),
            lang.pick("日時", "When")
        );
        out.push_str("| --- | --- | --- |\n");
        for a in input.acceptances {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(&org_name(input, &a.organization_id)),
                cell(&a.decided_by),
                lang.time(a.decided_at)
            );
        }
    }
    out
}

/// Raw HTML in the source becomes text to show, never markup.
fn html_as_text(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    }
}

/// The document as a standalone HTML page. Raw HTML written into rule
/// texts is shown as text, never interpreted.
pub fn html(input: &DocumentInput<'_>, lang: Lang) -> String {
    let source = markdown(input, lang);
    let mut body = String::new();
    html::push_html(
        &mut body,
        Parser::new_ext(&source, Options::ENABLE_TABLES).map(html_as_text),
    );
    let mut title = String::new();
    html::push_html(
        &mut title,
        Parser::new(input.content.title.trim()).map(html_as_text),
    );
    let title = title
        .trim()
        .trim_start_matches("<p>")
        .trim_end_matches("</p>");
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .5em}}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        lang.pick("ja", "en")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matrix::{Assignment, RaciRole};
    use crate::domain::rules::Rule;

    fn fixture() -> (RulesContent, Matrix, HashMap<Uuid, String>, Uuid, Uuid) {
        let (org, system) = (Uuid::now_v7(), Uuid::now_v7());
        let content = RulesContent {
            title: "Common rules <script>alert(1)</script>".into(),
            rules: vec![Rule {
                id: "R1".into(),
                title: "Patch within 21 days".into(),
                text: "Critical patches within 21 days. <img src=x onerror=alert(1)>".into(),
                controls: vec!["vulnerability-patch".into()],
            }],
            ..RulesContent::default()
        };
        let matrix = Matrix {
            controls: None,
            assignments: vec![Assignment {
                control: "vulnerability-patch".into(),
                system_id: None,
                organization_id: org,
                role: RaciRole::Accountable,
            }],
            classes: vec![],
        };
        let orgs = [(org, "Agency | A".to_owned())].into_iter().collect();
        (content, matrix, orgs, org, system)
    }

    #[test]
    fn the_markdown_holds_the_rules_the_matrix_and_the_acceptance_record() {
        let (content, matrix, orgs, org, system) = fixture();
        let controls = vec![("vulnerability-patch".to_owned(), "脆弱性対策".to_owned())];
        let systems = vec![(system, "Records".to_owned())];
        let acceptances = vec![AcceptanceLine {
            organization_id: org,
            decided_by: "mgr-1".into(),
            decided_at: Utc::now(),
        }];
        let input = DocumentInput {
            platform_name: "GCP",
            version: 2,
            state: "in_force",
            in_force_at: Some(Utc::now()),
            content: &content,
            matrix: Some((3, &matrix)),
            controls: &controls,
            systems: &systems,
            org_names: &orgs,
            acceptances: &acceptances,
        };
        let md = markdown(&input, Lang::Ja);
        assert!(md.contains("21 days"));
        assert!(
            md.contains("| 脆弱性対策 | Records |  | Agency \\| A |"),
            "{md}"
        );
        assert!(md.contains("mgr-1"));
        assert!(md.contains("JST"));
        assert!(markdown(&input, Lang::En).contains("Record of acceptance"));
    }

    #[test]
    fn html_shows_raw_html_in_rule_texts_as_text() {
        let (content, matrix, orgs, _, _) = fixture();
        let input = DocumentInput {
            platform_name: "GCP",
            version: 1,
            state: "proposed",
            in_force_at: None,
            content: &content,
            matrix: Some((1, &matrix)),
            controls: &[],
            systems: &[],
            org_names: &orgs,
            acceptances: &[],
        };
        let page = html(&input, Lang::En);
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;img"));
        assert!(page.contains("<table>") || page.contains("<h2>"));
    }

    #[test]
    fn the_language_comes_from_a_parameter_or_accept_language() {
        assert_eq!(Lang::parse("JA"), Some(Lang::Ja));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(
            Lang::from_accept_language("fr-FR, en-US;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("ja,en;q=0.5"), Some(Lang::Ja));
    }
}
