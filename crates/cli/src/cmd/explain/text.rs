//! Human output of `poskit explain`: fits 80 columns (a Chinese character takes two), and
//! puts first what an operator needs in front of a customer: the class and whether money
//! moved.

use poskit_codes::{
    CATALOG_VERSION, Entry, Found, Lang, Symptom, Table, UNKNOWN_CODE_CLASS, UNKNOWN_CODE_DISPLAY,
    UNKNOWN_CODE_MONEY_MOVED, VendorCode,
};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::{Out, Subject, entry_table};

/// Columns of the terminal the text is laid out for.
const WIDTH: usize = 80;
/// Indent of list items under a heading.
const ITEM_INDENT: usize = 2;

/// The fixed words of the layout. Meanings, causes and steps come from the catalog.
struct Words {
    class: &'static str,
    money: &'static str,
    meaning: &'static str,
    display: &'static str,
    actor: &'static str,
    retry: &'static str,
    category: &'static str,
    causes: &'static str,
    steps: &'static str,
    checks: &'static str,
    customer: &'static str,
    related: &'static str,
    conflicts: &'static str,
    note: &'static str,
    see_also: &'static str,
    catalog: &'static str,
    source: &'static str,
    local: &'static str,
    vendor: &'static str,
    not_in_catalog: &'static str,
    not_in_table: &'static str,
    defined_in: &'static str,
    guide: &'static str,
    also_called: &'static str,
    results: &'static str,
    details: &'static str,
    nothing_found: &'static str,
    try_list: &'static str,
    codes: &'static str,
    local_codes: &'static str,
    vendor_codes: &'static str,
    guides: &'static str,
    open_quote: &'static str,
    close_quote: &'static str,
}

const ZH: Words = Words {
    class: "类别",
    money: "扣款",
    meaning: "含义",
    display: "显示",
    actor: "处理",
    retry: "重试",
    category: "归类",
    causes: "可能原因（最可能的在前）",
    steps: "操作步骤",
    checks: "按顺序检查",
    customer: "对顾客说",
    related: "相关代码",
    conflicts: "各表差异",
    note: "说明",
    see_also: "另见",
    catalog: "目录",
    source: "来源",
    local: "终端本地代码，不经主机",
    vendor: "厂商显示代码",
    not_in_catalog: "目录里没有这个代码",
    not_in_table: "里没有这个代码",
    defined_in: " 表有这个代码：",
    guide: "指南",
    also_called: "也叫",
    results: "按相关度排列的结果",
    details: "详情：poskit explain 代码",
    nothing_found: "没有找到相关的代码或指南：",
    try_list: "换个说法再试，或用 poskit explain --list 查看全部代码。",
    codes: "个代码",
    local_codes: "终端本地代码",
    vendor_codes: "厂商显示代码",
    guides: "症状指南",
    open_quote: "“",
    close_quote: "”",
};

const EN: Words = Words {
    class: "Class",
    money: "Money moved?",
    meaning: "Meaning",
    display: "Display (zh)",
    actor: "Who acts",
    retry: "retry",
    category: "category",
    causes: "Likely causes, most likely first",
    steps: "Steps",
    checks: "Check in this order",
    customer: "Tell the customer",
    related: "Related",
    conflicts: "Conflicts between tables",
    note: "Note",
    see_also: "See also",
    catalog: "catalog",
    source: "source",
    local: "terminal-local code, never sent by a host",
    vendor: "vendor display code",
    not_in_catalog: "not a code the catalog knows",
    not_in_table: "does not list this code",
    defined_in: " defines this code: ",
    guide: "guide",
    also_called: "also called",
    results: "results, best first",
    details: "Details: poskit explain CODE",
    nothing_found: "No code or guide matches ",
    try_list: "Try other words, or see every code with poskit explain --list.",
    codes: "codes",
    local_codes: "Terminal-local codes",
    vendor_codes: "Vendor display codes",
    guides: "Symptom guides",
    open_quote: "\"",
    close_quote: "\"",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

/// Width of the label column: the widest label of `field` plus two spaces.
fn key_width(lang: Lang) -> usize {
    let w = words(lang);
    [
        w.class, w.money, w.meaning, w.display, w.actor, w.note, w.see_also,
    ]
    .iter()
    .map(|label| label.width())
    .max()
    .unwrap_or(0)
        + 2
}

pub(super) fn subject(out: &Out<'_>, subject: &Subject<'_>) -> String {
    let mut doc = Doc::new(out.lang);
    match subject {
        Subject::Code(entry) => {
            let table = entry_table(entry, out.table);
            doc.line(&format!(
                "{} · {}",
                entry.code(),
                table_title(table, out.lang)
            ));
            entry_body(&mut doc, out, entry);
        }
        Subject::Local(entry) => {
            doc.line(&format!("{} · {}", entry.code(), doc.words.local));
            entry_body(&mut doc, out, entry);
        }
        Subject::Vendor(vendor, target) => vendor_body(&mut doc, out, vendor, *target),
        Subject::Unknown { code, defined_in } => unknown_body(&mut doc, out, code, defined_in),
        Subject::Symptom(symptom) => symptom_body(&mut doc, out, symptom),
        Subject::Search { query, hits } => search_body(&mut doc, out, query, hits),
    }
    doc.finish()
}

fn table_title(table: Table, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("{}（{}）", table.label(lang), table.as_str()),
        Lang::En => format!("{} ({})", table.label(lang), table.as_str()),
    }
}

fn entry_body(doc: &mut Doc, out: &Out<'_>, entry: &Entry) {
    let lang = out.lang;
    let w = doc.words;
    doc.field(
        w.class,
        &format!("{} · {}", entry.class().as_str(), entry.class().label(lang)),
    );
    doc.field(w.money, entry.money_moved().label(lang));
    doc.field(w.meaning, entry.meaning(lang));
    doc.field(w.display, entry.display());
    let actor = format!(
        "{} · {}: {} · {}: {}",
        entry.actor().label(lang),
        w.retry,
        entry.retry().label(lang),
        w.category,
        entry.category().label(lang)
    );
    doc.field(w.actor, &colon(lang, &actor));
    doc.blank();
    doc.heading(w.causes);
    doc.numbered(entry.causes(lang));
    doc.blank();
    doc.heading(w.steps);
    doc.numbered(entry.steps(lang));
    doc.blank();
    doc.heading(w.customer);
    doc.item(entry.customer(lang));
    related(doc, out, entry.related());
    if !entry.conflicts(lang).is_empty() {
        doc.blank();
        doc.heading(w.conflicts);
        for conflict in entry.conflicts(lang) {
            doc.bullet(conflict);
        }
    }
    doc.blank();
    doc.line(&colon(
        lang,
        &format!(
            "{} {} · {}: {}",
            w.catalog,
            CATALOG_VERSION,
            w.source,
            entry.source()
        ),
    ));
}

fn vendor_body(doc: &mut Doc, out: &Out<'_>, vendor: &VendorCode, target: Option<&Entry>) {
    let w = doc.words;
    let vendor_name = match out.lang {
        Lang::Zh => format!("{}（{}）", w.vendor, vendor.vendor()),
        Lang::En => format!("{} ({})", w.vendor, vendor.vendor()),
    };
    doc.line(&format!(
        "{} · {} → {}",
        vendor.code(),
        vendor_name,
        vendor.maps_to()
    ));
    doc.field(w.note, vendor.note(out.lang));
    doc.blank();
    match target {
        Some(entry) if entry.is_local() => {
            doc.line(&format!("{} · {}", entry.code(), w.local));
            entry_body(doc, out, entry);
        }
        Some(entry) => {
            let table = entry_table(entry, Table::CupPos);
            doc.line(&format!(
                "{} · {}",
                entry.code(),
                table_title(table, out.lang)
            ));
            entry_body(doc, out, entry);
        }
        None => doc.line(&format!("{} · {}", vendor.maps_to(), w.not_in_catalog)),
    }
}

fn unknown_body(doc: &mut Doc, out: &Out<'_>, code: &str, defined_in: &[Table]) {
    let lang = out.lang;
    let w = doc.words;
    let is_field39 = code.len() == 2;
    let header = if is_field39 {
        match lang {
            Lang::Zh => format!(
                "{code} · {}{}",
                table_title(out.table, lang),
                w.not_in_table
            ),
            Lang::En => format!(
                "{code} · {} {}",
                table_title(out.table, lang),
                w.not_in_table
            ),
        }
    } else {
        format!("{code} · {}", w.not_in_catalog)
    };
    doc.line(&header);
    doc.field(
        w.class,
        &format!(
            "{} · {}",
            UNKNOWN_CODE_CLASS.as_str(),
            UNKNOWN_CODE_CLASS.label(lang)
        ),
    );
    doc.field(w.money, UNKNOWN_CODE_MONEY_MOVED.label(lang));
    doc.field(w.display, UNKNOWN_CODE_DISPLAY);
    for (index, table) in defined_in.iter().enumerate() {
        let label = if index == 0 { w.see_also } else { "" };
        let command = format!("`poskit explain {code} --table {}`", table.as_str());
        doc.field(
            label,
            &format!("{}{}{command}", table.as_str(), w.defined_in),
        );
    }
    doc.blank();
    symptom_body(doc, out, out.catalog.unknown_code_guide());
}

fn symptom_body(doc: &mut Doc, out: &Out<'_>, symptom: &Symptom) {
    let lang = out.lang;
    let w = doc.words;
    doc.line(symptom.title(lang));
    let names: Vec<&str> = symptom.names(lang).iter().map(String::as_str).collect();
    let separator = if lang == Lang::Zh { "、" } else { ", " };
    let aside = colon(
        lang,
        &format!(
            "{} {} · {}: {}",
            w.guide,
            symptom.id(),
            w.also_called,
            names.join(separator)
        ),
    );
    doc.line(&match lang {
        Lang::Zh => format!("（{aside}）"),
        Lang::En => format!("({aside})"),
    });
    doc.blank();
    doc.heading(w.checks);
    doc.numbered(symptom.steps(lang));
    doc.blank();
    doc.heading(w.customer);
    doc.item(symptom.customer(lang));
    related(doc, out, symptom.related());
}

fn search_body(doc: &mut Doc, out: &Out<'_>, query: &str, hits: &[poskit_codes::Hit<'_>]) {
    let lang = out.lang;
    let w = doc.words;
    let quoted = format!("{}{query}{}", w.open_quote, w.close_quote);
    if hits.is_empty() {
        doc.line(&format!("{}{quoted}", w.nothing_found));
        doc.line(w.try_list);
        return;
    }
    let title = match lang {
        Lang::Zh => format!("{quoted}：{}（{}）", w.results, out.table.as_str()),
        Lang::En => format!("{quoted}: {} ({})", w.results, out.table.as_str()),
    };
    doc.line(&title);
    for hit in hits {
        match hit.found {
            Found::Entry(entry) => {
                let text = format!(
                    "{} · {} · {}",
                    entry.class().as_str(),
                    entry.money_moved().label(lang),
                    entry.meaning(lang)
                );
                doc.row(entry.code(), 5, &text);
            }
            Found::Symptom(symptom) => {
                let name = symptom
                    .names(lang)
                    .first()
                    .map_or(symptom.id(), String::as_str);
                doc.row(name, 5, &format!("{} · {}", w.guide, symptom.title(lang)));
            }
        }
    }
    doc.blank();
    doc.line(w.details);
}

fn related(doc: &mut Doc, out: &Out<'_>, codes: &[String]) {
    if codes.is_empty() {
        return;
    }
    doc.blank();
    doc.heading(doc.words.related);
    for code in codes {
        let meaning = out
            .catalog
            .resolve(code, out.table)
            .map_or("", |entry| entry.meaning(out.lang));
        doc.row_truncated(code, 5, meaning);
    }
}

pub(super) fn list(out: &Out<'_>) -> String {
    let lang = out.lang;
    let mut doc = Doc::new(lang);
    let w = doc.words;
    let catalog = out.catalog;
    let money_width = poskit_codes::MoneyMoved::ALL
        .iter()
        .map(|money| money.label(lang).width())
        .max()
        .unwrap_or(0);
    let summary = |entry: &Entry| {
        let money = pad(entry.money_moved().label(lang), money_width);
        format!(
            "{}  {}  {}",
            entry.class().as_str(),
            money,
            entry.meaning(lang)
        )
    };

    let entries: Vec<&Entry> = catalog.entries(out.table).collect();
    doc.heading(&format!(
        "{} · {} {}",
        table_title(out.table, lang),
        entries.len(),
        w.codes
    ));
    for entry in entries {
        doc.row_truncated(entry.code(), 5, &summary(entry));
    }
    doc.blank();
    doc.heading(&format!(
        "{} · {} {}",
        w.local_codes,
        catalog.locals().len(),
        w.codes
    ));
    for entry in catalog.locals() {
        doc.row_truncated(entry.code(), 5, &summary(entry));
    }
    doc.blank();
    doc.heading(&format!(
        "{} · {} {}",
        w.vendor_codes,
        catalog.vendors().len(),
        w.codes
    ));
    for vendor in catalog.vendors() {
        doc.row_truncated(
            vendor.code(),
            6,
            &format!("→ {:<4} {}", vendor.maps_to(), vendor.note(lang)),
        );
    }
    doc.blank();
    doc.heading(&format!("{} · {}", w.guides, catalog.symptoms().len()));
    let name = |symptom: &Symptom| -> String {
        symptom
            .names(lang)
            .first()
            .map_or(symptom.id(), String::as_str)
            .to_owned()
    };
    let name_width = catalog
        .symptoms()
        .iter()
        .map(|symptom| name(symptom).width())
        .max()
        .unwrap_or(0);
    for symptom in catalog.symptoms() {
        doc.row_truncated(&name(symptom), name_width + 2, symptom.title(lang));
    }
    doc.finish()
}

/// Chinese text uses full-width colons; `text` is written with ": ".
fn colon(lang: Lang, text: &str) -> String {
    match lang {
        Lang::Zh => text.replace(": ", "："),
        Lang::En => text.to_owned(),
    }
}

fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

/// A text being laid out.
struct Doc {
    text: String,
    words: &'static Words,
    key_width: usize,
}

impl Doc {
    fn new(lang: Lang) -> Doc {
        Doc {
            text: String::new(),
            words: words(lang),
            key_width: key_width(lang),
        }
    }

    fn finish(self) -> String {
        self.text
    }

    fn push_lines(&mut self, lines: Vec<String>) {
        for line in lines {
            self.text.push_str(line.trim_end());
            self.text.push('\n');
        }
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    /// Text from column 0, wrapped.
    fn line(&mut self, text: &str) {
        self.push_lines(wrap(text, "", ""));
    }

    fn heading(&mut self, text: &str) {
        self.line(text);
    }

    /// `key` in the label column, `value` wrapped beside it.
    fn field(&mut self, key: &str, value: &str) {
        let first = pad(key, self.key_width);
        let rest = " ".repeat(self.key_width);
        self.push_lines(wrap(value, &first, &rest));
    }

    /// An indented paragraph.
    fn item(&mut self, text: &str) {
        let indent = " ".repeat(ITEM_INDENT);
        self.push_lines(wrap(text, &indent, &indent));
    }

    fn numbered(&mut self, items: &[String]) {
        for (number, item) in items.iter().enumerate() {
            let first = format!("{}{}. ", " ".repeat(ITEM_INDENT), number + 1);
            let rest = " ".repeat(first.width());
            self.push_lines(wrap(item, &first, &rest));
        }
    }

    fn bullet(&mut self, text: &str) {
        let first = format!("{}- ", " ".repeat(ITEM_INDENT));
        let rest = " ".repeat(first.width());
        self.push_lines(wrap(text, &first, &rest));
    }

    /// An indented `key` in a column of `key_width`, then `text` wrapped beside it.
    fn row(&mut self, key: &str, key_width: usize, text: &str) {
        let first = format!("{}{}", " ".repeat(ITEM_INDENT), pad(key, key_width));
        let first = if first.width() > ITEM_INDENT + key_width {
            format!("{first} ")
        } else {
            first
        };
        let rest = " ".repeat(ITEM_INDENT + key_width);
        self.push_lines(wrap(text, &first, &rest));
    }

    /// [`Doc::row`] on one line, cutting `text` short with "…" where it would not fit.
    fn row_truncated(&mut self, key: &str, key_width: usize, text: &str) {
        let mut first = format!("{}{}", " ".repeat(ITEM_INDENT), pad(key, key_width));
        if key_width == 0 || first.width() > ITEM_INDENT + key_width {
            first.push_str("  ");
        }
        let room = WIDTH.saturating_sub(first.width());
        let line = format!("{first}{}", truncate(text, room));
        self.push_lines(vec![line]);
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let ch_width = ch.width().unwrap_or(0);
        if used + ch_width + 1 > width {
            break;
        }
        cut.push(ch);
        used += ch_width;
    }
    cut.push('…');
    cut
}

/// A piece of text that is never split across lines (unless it alone is too wide).
struct Unit {
    text: String,
    /// White space stood before it in the source; it becomes one space within a line.
    space_before: bool,
}

/// Cuts text into units: a run of narrow non-space characters is a unit (an English word,
/// a command option); a command in backticks is one unit, spaces and all; each wide
/// character is its own unit, so Chinese breaks between any two characters. Closing
/// punctuation sticks to what precedes it and opening punctuation to what follows, so no
/// line starts with "，" or ends with "（".
fn units(text: &str) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let mut space_before = false;
    let mut glue_next = false;
    let mut in_backticks = false;
    for ch in text.chars() {
        if in_backticks {
            units
                .last_mut()
                .expect("an open backtick starts a unit")
                .text
                .push(ch);
            in_backticks = ch != '`';
            continue;
        }
        if ch == '`' {
            in_backticks = true;
            let join = !space_before && glue_next;
            if join {
                units.last_mut().expect("glue needs a unit").text.push(ch);
            } else {
                units.push(Unit {
                    text: ch.to_string(),
                    space_before,
                });
            }
            glue_next = false;
            space_before = false;
            continue;
        }
        if ch.is_whitespace() {
            space_before = true;
            glue_next = false;
            continue;
        }
        let wide = ch.width().unwrap_or(0) >= 2;
        let closing = "，。、；：！？）」』》”’".contains(ch);
        let opening = "（「『《“‘".contains(ch);
        let last_is_narrow_run = units.last().is_some_and(|unit| {
            unit.text
                .chars()
                .last()
                .is_some_and(|last| last.width().unwrap_or(0) < 2)
        });
        let join = !space_before
            && !units.is_empty()
            && (glue_next || closing || (!wide && last_is_narrow_run));
        if join {
            units.last_mut().expect("join needs a unit").text.push(ch);
        } else {
            units.push(Unit {
                text: ch.to_string(),
                space_before,
            });
        }
        glue_next = opening;
        space_before = false;
    }
    units
}

/// Wraps `text` to [`WIDTH`] columns: the first line starts with `first`, later lines with
/// `rest` (both already laid out, e.g. a label and its padding).
fn wrap(text: &str, first: &str, rest: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_owned();
    let mut line_is_empty = true;
    for unit in units(text) {
        let gap = if unit.space_before && !line_is_empty {
            1
        } else {
            0
        };
        if !line_is_empty && line.width() + gap + unit.text.width() > WIDTH {
            lines.push(std::mem::replace(&mut line, rest.to_owned()));
            line_is_empty = true;
        }
        if !line_is_empty && unit.space_before {
            line.push(' ');
        }
        // A unit wider than a whole line is split where it must be.
        for ch in unit.text.chars() {
            if line.width() + ch.width().unwrap_or(0) > WIDTH && !line_is_empty {
                lines.push(std::mem::replace(&mut line, rest.to_owned()));
            }
            line.push(ch);
            line_is_empty = false;
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(lines: &[String]) -> Vec<usize> {
        lines.iter().map(|line| line.width()).collect()
    }

    #[test]
    fn english_wraps_between_words_within_80_columns() {
        let text = "word ".repeat(40);
        let lines = wrap(text.trim(), "Label  ", "       ");
        assert!(
            widths(&lines).iter().all(|&width| width <= WIDTH),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("       word"));
        assert!(lines.iter().all(|line| !line.ends_with("wor")));
    }

    #[test]
    fn chinese_counts_two_columns_per_character_and_breaks_anywhere_but_before_closing_punctuation()
    {
        let text = "终端没有收到应答，".repeat(10);
        let lines = wrap(&text, "", "");
        assert!(
            widths(&lines).iter().all(|&width| width <= WIDTH),
            "{lines:?}"
        );
        assert!(
            lines.iter().all(|line| !line.starts_with('，')),
            "{lines:?}"
        );
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn mixed_text_keeps_commands_whole() {
        let text = format!(
            "{}用 `poskit pos --terminal DIR status` 确认",
            "先".repeat(30)
        );
        let lines = wrap(&text, "", "");
        assert!(
            lines.iter().any(|line| line.contains("--terminal")),
            "{lines:?}"
        );
        assert!(widths(&lines).iter().all(|&width| width <= WIDTH));
    }

    #[test]
    fn a_command_in_backticks_is_never_split_across_lines() {
        let text = format!(
            "{} `poskit explain \"repeated timeouts\"`，然后再试",
            "word".repeat(15)
        );
        let lines = wrap(&text, "", "");
        assert_eq!(
            lines[1], "`poskit explain \"repeated timeouts\"`，然后再试",
            "{lines:?}"
        );
    }

    #[test]
    fn a_word_wider_than_a_line_is_split() {
        let lines = wrap(&"x".repeat(100), "  ", "  ");
        assert_eq!(widths(&lines), [80, 24]);
    }

    #[test]
    fn truncation_marks_the_cut_and_stays_within_the_width() {
        assert_eq!(truncate("短文本", 10), "短文本");
        let cut = truncate("这是一段很长很长的说明文字", 10);
        assert_eq!(cut, "这是一段…");
        assert!(cut.width() <= 10);
    }
}
