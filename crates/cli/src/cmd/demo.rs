//! `poskit demo`: the whole system in one command. A host on embedded SQLite, a fleet of
//! virtual terminals with mild faults and the usual cardholder mistakes, a live progress
//! line, then settlement, the checker, and a report a merchant or an operations lead reads.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use poskit_codes::{Catalog, Category, Class, Entry, Lang, Table};
use poskit_sim::live::{self, LiveReport, Progress};
use poskit_web::users::{self, Role};

use crate::cmd::locale::{self, tr};
use crate::cmd::pos::yuan;
use crate::fail::{self, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the fleet trades, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Virtual terminals (1 to 64).
    #[arg(long, default_value_t = 8)]
    terminals: u32,
    /// Where the host's ledger and the terminals' journals go (default: a new directory
    /// under the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Language of the report: zh or en (default: the locale).
    #[arg(long, value_name = "LANG")]
    lang: Option<String>,
    /// Keep the API (and its logins) serving the run's data after the report, until Ctrl-C.
    #[arg(long)]
    keep_serving: bool,
}

/// The demo's API users: (name, role, merchant).
const DEMO_USERS: [(&str, Role, Option<&str>); 3] = [
    ("demo-admin", Role::Admin, None),
    ("demo-operator", Role::Operator, None),
    (
        "demo-merchant",
        Role::Merchant,
        Some(poskit_host::demo::MID_MAIN),
    ),
];

/// Makes the demo's users (a fresh password each) in the host's directory.
fn demo_users(host_dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(host_dir)?;
    let conn = users::open(host_dir)?;
    let mut out = Vec::new();
    for (name, role, merchant) in DEMO_USERS {
        let password = users::random_password()?;
        users::add(&conn, name, role, merchant, &password)?;
        out.push((format!("{name} ({})", role.as_str()), password));
    }
    Ok(out)
}

/// How often a progress line is printed when the output is not a terminal (CI, `| tee`).
const PLAIN_PROGRESS_EVERY_SECS: u64 = 5;

fn summary(p: &Progress, elapsed: Duration, lang: Lang) -> String {
    let rate = p.transactions as f64 / elapsed.as_secs_f64().max(0.001);
    let mut codes: Vec<_> = p.declined.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = codes
        .iter()
        .take(6)
        .map(|(c, n)| format!("{c}×{n}"))
        .collect();
    let top = if top.is_empty() {
        "-".into()
    } else {
        top.join(" ")
    };
    let (n, approved, reversed) = (p.transactions, p.approved, p.reversals_done);
    match lang {
        Lang::En => format!(
            "{n} txn · {rate:.0}/s · approved {approved} · declined {top} · reversals {reversed}"
        ),
        Lang::Zh => {
            format!("{n} 笔 · {rate:.0} 笔/秒 · 成功 {approved} · 失败 {top} · 冲正 {reversed}")
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.seconds == 0 || args.seconds > 3600 {
        return Err(usage("--seconds: 1 to 3600"));
    }
    if args.terminals == 0 || args.terminals > live::TERMINALS_MAX {
        return Err(usage(format!("--terminals: 1 to {}", live::TERMINALS_MAX)));
    }
    let lang = locale::chosen(args.lang.as_deref())?;
    let data = match args.data {
        Some(d) => d,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            std::env::temp_dir().join(format!("poskit-demo-{stamp}"))
        }
    };
    if data.join("host").join("host.sqlite").exists() {
        return Err(usage(format!(
            "--data {}: a demo already ran there; give a new directory",
            data.display()
        )));
    }
    std::fs::create_dir_all(&data).with_context(|| format!("--data {}", data.display()))?;
    let (terminals, seconds) = (args.terminals, args.seconds);
    match lang {
        Lang::En => outln!(
            "poskit demo: a host on SQLite and {terminals} virtual terminals for {seconds} s, with mild faults (lost and late answers, line noise, dropped connections, a slow issuer)"
        ),
        Lang::Zh => outln!(
            "poskit demo：SQLite 上的一台主机和 {terminals} 台虚拟终端，运行 {seconds} 秒，带轻度故障（应答丢失或迟到、线路噪声、连接中断、发卡行响应慢）"
        ),
    }?;
    let bar = ProgressBar::new(args.seconds);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let host_dir = data.join("host");
    let logins = demo_users(&host_dir)?;
    let api = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let api_addr = api.local_addr()?;
    runtime.spawn(poskit_web::serve(
        api,
        poskit_web::AppState::new(host_dir, false),
        None,
        std::future::pending(),
    ));
    outln!(
        "{} http://{api_addr}/api/v1/ (/openapi.json)",
        tr(lang, "API while it runs:", "运行期间的 API：")
    )?;
    for (who, password) in &logins {
        outln!("  {who}: {password}")?;
    }
    let ticking = bar.clone();
    // Without a terminal the bar is not drawn: a plain line every few seconds instead.
    let plain = !std::io::stdout().is_terminal();
    let printed_secs = Arc::new(AtomicU64::new(0));
    let report = runtime
        .block_on(live::run_live(
            &data,
            args.seconds,
            args.terminals,
            move |admin| {
                if let Some(admin) = admin {
                    let said = tr(lang, "metrics while it runs:", "运行期间的监控指标：");
                    // A write error here shows again, and ends the command, at the report.
                    let _ = outln!("{said} http://{admin}/metrics");
                }
            },
            move |p, elapsed| {
                let secs = elapsed.as_secs();
                ticking.set_position(secs);
                ticking.set_message(summary(p, elapsed, lang));
                let due = printed_secs.load(Ordering::Relaxed) + PLAIN_PROGRESS_EVERY_SECS;
                if plain && secs >= due {
                    printed_secs.store(secs, Ordering::Relaxed);
                    // A write error here shows again, and ends the command, at the report.
                    let _ = outln!("{secs:>4} s  {}", summary(p, elapsed, lang));
                }
            },
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    bar.finish_and_clear();
    print_report(&report, lang)?;
    if args.keep_serving {
        outln!(
            "{} http://{api_addr}/api/v1/ — Ctrl-C {}",
            tr(
                lang,
                "The API keeps serving this run's data:",
                "API 继续提供本次运行的数据："
            ),
            tr(lang, "to stop", "停止")
        )?;
        crate::out::flush()?;
        let _ = runtime.block_on(tokio::signal::ctrl_c());
    }
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}

fn print_report(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let p = &r.progress;
    let secs = r.elapsed_ms as f64 / 1000.0;
    let (n, rate) = (p.transactions, p.transactions as f64 / secs.max(0.001));
    let (approved, failed) = (p.approved, p.transactions.saturating_sub(p.approved));
    outln!()?;
    match lang {
        Lang::En => {
            outln!("== What happened in {secs:.0} s ==")?;
            outln!(
                "{n} transactions ({rate:.0} per second): {approved} approved, {failed} declined or failed"
            )?;
        }
        Lang::Zh => {
            outln!("== {secs:.0} 秒内发生了什么 ==")?;
            outln!("共 {n} 笔交易（每秒 {rate:.0} 笔）：成功 {approved} 笔，失败 {failed} 笔")?;
        }
    }
    print_amounts_and_latency(p, lang)?;
    print_faults(r, lang)?;
    print_codes(p, lang)?;
    print_reversals(r, lang)?;
    print_settlements(r, lang)?;
    print_checker(r, lang)?;
    print_recon(r, lang)?;
    print_stats(r, lang)?;
    print_alerts(r, lang)?;
    Ok(())
}

/// The alerts the host's rules raised during the run, each with its likely cause.
fn print_alerts(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let path = r.host_dir.join(poskit_host::run::STATS_FILE);
    let Ok(conn) = rusqlite::Connection::open(&path) else {
        return Ok(());
    };
    let Ok(fired) = poskit_monitor::alerts::list(&conn, Some(0), DEMO_ALERTS_SHOWN_MAX) else {
        return Ok(());
    };
    outln!()?;
    outln!(
        "{}",
        tr(
            lang,
            "== Alerts the host raised (poskit alerts) ==",
            "== 主机发出的告警（poskit alerts） =="
        )
    )?;
    if fired.is_empty() {
        outln!("  {}", tr(lang, "none", "无"))?;
    }
    for a in &fired {
        crate::cmd::alerts::print_alert(a, lang)?;
    }
    outln!("  poskit alerts --data {} list --all", r.host_dir.display())?;
    Ok(())
}

/// Alerts the demo's report shows at most (newest first).
const DEMO_ALERTS_SHOWN_MAX: usize = 10;

/// What the host's statistics counted (`poskit stats`), and where to look further.
fn print_stats(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let path = r.host_dir.join(poskit_host::run::STATS_FILE);
    let Ok(conn) = rusqlite::Connection::open(&path) else {
        return Ok(());
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let Ok(w) = poskit_monitor::stats::window(&conn, "all", "", 60, now_ms) else {
        return Ok(());
    };
    outln!()?;
    outln!(
        "{}",
        tr(
            lang,
            "== Statistics (poskit stats) ==",
            "== 统计（poskit stats） =="
        )
    )?;
    outln!(
        "{} {}, {} {:.1} %, {} {:.1} %",
        w.attempts,
        tr(lang, "attempts", "笔交易请求"),
        tr(lang, "approved", "成功率"),
        w.approval_rate * 100.0,
        tr(lang, "first attempts approved", "首次尝试成功率"),
        w.first_attempt_approval_rate * 100.0
    )?;
    let dir = r.host_dir.display();
    outln!("  poskit stats --data {dir} --window 1h")?;
    if let Some(t) = r.terminal_dirs.first().and_then(|d| d.file_name()) {
        outln!(
            "  poskit diagnose --data {dir} --terminal {}",
            t.to_string_lossy()
        )?;
    }
    Ok(())
}

/// The day's reconciliation with the switch: counts per break class, what was posted.
fn print_recon(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let zh = lang == Lang::Zh;
    outln!()?;
    outln!(
        "{}",
        tr(
            lang,
            "== Reconciliation with the switch (cards of other banks) ==",
            "== 与银联对账（他行卡） =="
        )
    )?;
    let report = match &r.recon {
        Some(Ok(report)) => report,
        Some(Err(why)) => {
            outln!("{} {why}", tr(lang, "could not run:", "未能对账："))?;
            return Ok(());
        }
        None => return Ok(()),
    };
    outln!(
        "{} {}: {} {}, {} {}",
        tr(lang, "clearing day", "清算日"),
        report.date,
        report.matched,
        tr(lang, "matched", "笔对平"),
        report.breaks.len(),
        tr(lang, "breaks", "笔差错")
    )?;
    let mut per_class: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
    for b in &report.breaks {
        let e = per_class.entry(b.class.as_str()).or_default();
        e.0 += 1;
        e.1 += b.amount_fen;
        e.2 += u64::from(b.status == poskit_recon::Status::Resolved);
    }
    for (class, (n, fen, resolved)) in per_class {
        let name = poskit_codes::advice::break_advice(class).map_or(class, |a| a.name(lang));
        let given_back = if resolved > 0 {
            format!(
                ", {resolved} {}",
                tr(
                    lang,
                    "given back by a credit adjustment (E32)",
                    "已通过贷记调整（E32）退回"
                )
            )
        } else {
            String::new()
        };
        outln!(
            "  {n:>4} × {name}: {}.{:02} {}{given_back}",
            fen / 100,
            fen % 100,
            tr(lang, "yuan", "元"),
        )?;
    }
    for why in &report.incomplete_reasons {
        outln!("  {} {why}", tr(lang, "incomplete:", "未完成："))?;
    }
    let date = &report.date;
    let dir = r.host_dir.display();
    if zh {
        outln!("  明细：poskit recon --data {dir} --date {date} --lang zh")?;
    } else {
        outln!("  Details: poskit recon --data {dir} --date {date}")?;
    }
    Ok(())
}

fn print_amounts_and_latency(p: &Progress, lang: Lang) -> anyhow::Result<()> {
    let (debits, credits, reversed) = (
        yuan(p.approved_debit_fen),
        yuan(p.approved_credit_fen),
        yuan(p.reversed_fen),
    );
    match lang {
        Lang::En => outln!(
            "Amounts: approved sales and completions {debits}, voids and refunds {credits}, reversed {reversed} (those customers were not charged)"
        ),
        Lang::Zh => outln!(
            "金额：成功的消费和预授权完成 {debits}，撤销和退货 {credits}，已冲正 {reversed}（这些顾客没有被扣款）"
        ),
    }?;
    if let (Some(p50), Some(p99), Some(max)) =
        (p.latency_ms(50), p.latency_ms(99), p.latency_ms(100))
    {
        match lang {
            Lang::En => {
                outln!("Latency per transaction: p50 {p50} ms, p99 {p99} ms, max {max} ms")
            }
            Lang::Zh => {
                outln!("每笔交易耗时：中位数 {p50} 毫秒，p99 {p99} 毫秒，最长 {max} 毫秒")
            }
        }?;
    }
    Ok(())
}

fn print_faults(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let list: Vec<String> = r
        .faults
        .iter()
        .map(|(name, n)| format!("{name} ×{n}"))
        .collect();
    let list = match list.is_empty() {
        true => tr(lang, "none fired", "无").to_owned(),
        false => list.join(", "),
    };
    // The rule names are the plan's own words (English in the demo's plan).
    outln!(
        "{}{list}",
        tr(
            lang,
            "Faults the host injected: ",
            "主机注入的故障（规则名）："
        )
    )?;
    Ok(())
}

/// Who a failure is for: the cardholder's card or account, the system (network, host,
/// keys, issuer down), or the shop's set-up and terminal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Cardholder,
    System,
    SetUp,
}

fn group_of(entry: Option<&Entry>) -> Group {
    let Some(e) = entry else {
        return Group::System;
    };
    match (e.class(), e.category()) {
        (Class::E, _) => Group::System,
        (_, Category::Card | Category::Cardholder | Category::Issuer) => Group::Cardholder,
        (_, Category::Communication | Category::HostSystem | Category::SecurityKeys) => {
            Group::System
        }
        (_, Category::MerchantSetup | Category::Terminal) => Group::SetUp,
    }
}

fn print_codes(p: &Progress, lang: Lang) -> anyhow::Result<()> {
    let catalog = Catalog::builtin();
    let entry_of = |code: &str| match code.starts_with('L') {
        true => catalog.local(code),
        false => catalog.lookup(Table::CupPos, code),
    };
    let mut codes: Vec<_> = p.declined.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let headings = [
        (
            Group::Cardholder,
            tr(
                lang,
                "Declined for the card or the cardholder",
                "因卡片或持卡人被拒",
            ),
        ),
        (
            Group::System,
            tr(
                lang,
                "System failures (network, host, keys, issuer unavailable)",
                "系统故障（网络、主机、密钥、发卡行不可用）",
            ),
        ),
        (
            Group::SetUp,
            tr(lang, "Set-up and terminal", "商户设置与终端"),
        ),
    ];
    for (group, heading) in headings {
        let in_group: Vec<_> = codes
            .iter()
            .filter(|(c, _)| group_of(entry_of(c)) == group)
            .collect();
        if in_group.is_empty() {
            continue;
        }
        let total: u64 = in_group.iter().map(|(_, n)| **n).sum();
        outln!()?;
        outln!("{heading}{}{total}", tr(lang, ": ", "："))?;
        for (code, n) in in_group.iter().take(6) {
            print_code(code, **n, entry_of(code), lang)?;
        }
    }
    Ok(())
}

fn print_code(code: &str, n: u64, entry: Option<&Entry>, lang: Lang) -> anyhow::Result<()> {
    let (meaning, step, local) = match entry {
        Some(e) => (
            e.meaning(lang).to_owned(),
            e.steps(lang).first().cloned().unwrap_or_default(),
            e.is_local(),
        ),
        None => (
            Catalog::builtin()
                .unknown_code_guide()
                .title(lang)
                .to_owned(),
            String::new(),
            false,
        ),
    };
    let mark = match local {
        true => tr(lang, " (terminal-local code)", "（终端本地码）"),
        false => "",
    };
    outln!("  {code:>3} ×{n:<5} {meaning}{mark}")?;
    if !step.is_empty() {
        outln!("              → {step}")?;
    }
    Ok(())
}

fn print_reversals(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let p = &r.progress;
    let (done, left, failed) = (p.reversals_done, r.reversals_left, p.reversals_failed);
    outln!()?;
    match lang {
        Lang::En => {
            out!("Reversals: {done} sent and done (the customer was not charged)")?;
            if left > 0 {
                out!(
                    ", {left} still pending in a journal (sent before that terminal's next transaction)"
                )?;
            }
            if failed > 0 {
                out!(", {failed} FAILED (contact the acquirer)")?;
            }
        }
        Lang::Zh => {
            out!("冲正：{done} 笔已发送并完成（顾客没有被扣款）")?;
            if left > 0 {
                out!("，{left} 笔仍在终端流水中待发（该终端下一笔交易前发出）")?;
            }
            if failed > 0 {
                out!("，{failed} 笔失败（请联系收单机构）")?;
            }
        }
    }
    outln!()?;
    Ok(())
}

fn print_settlements(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let (balanced, unbalanced) = (r.settlements_balanced, r.settlements_unbalanced);
    let failed = r.settlement_failures.len();
    match lang {
        Lang::En => outln!(
            "Settlement: {balanced} terminals balanced, {unbalanced} unbalanced and batch-uploaded, {failed} could not settle"
        ),
        Lang::Zh => outln!(
            "结算：{balanced} 台终端对账平，{unbalanced} 台对账不平并已批上送，{failed} 台未能结算"
        ),
    }?;
    for s in &r.settled {
        let (tid, dn, df, cn, cf) = (
            &s.tid,
            s.debit_count,
            yuan(s.debit_fen),
            s.credit_count,
            yuan(s.credit_fen),
        );
        let state = match s.balanced {
            true => tr(lang, "balanced", "对账平"),
            false => tr(lang, "unbalanced, uploaded", "对账不平，已上送"),
        };
        match lang {
            Lang::En => {
                outln!("  {tid}  debits {dn:>4} {df:>12}   credits {cn:>4} {cf:>12}   {state}")
            }
            Lang::Zh => {
                outln!("  {tid}  借记 {dn:>4} 笔 {df:>12}   贷记 {cn:>4} 笔 {cf:>12}   {state}")
            }
        }?;
    }
    for f in &r.settlement_failures {
        outln!("  {f}")?;
    }
    Ok(())
}

fn print_checker(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    if r.breaks.is_empty() {
        outln!(
            "{}",
            tr(
                lang,
                "Breaks: none — every transaction the terminals reported failed left the customer's money alone",
                "差错：无——终端报告失败的每一笔交易都没有动顾客的钱"
            )
        )?;
    } else {
        outln!(
            "{}{}",
            tr(lang, "Breaks for the acquirer: ", "需收单机构处理的差错："),
            r.breaks.len()
        )?;
        for b in r.breaks.iter().take(10) {
            outln!("  {b}")?;
        }
    }
    if r.violations.is_empty() {
        outln!(
            "{}",
            tr(
                lang,
                "Checker: every journal agrees with the ledger; the ledger balances.",
                "核对：每台终端的流水都与主机账务一致；账务平衡。"
            )
        )?;
    } else {
        outln!(
            "{}{}",
            tr(lang, "Checker: VIOLATIONS: ", "核对：违规："),
            r.violations.len()
        )?;
        for v in r.violations.iter().take(20) {
            outln!("  {v}")?;
        }
    }
    outln!()?;
    outln!(
        "{}",
        tr(
            lang,
            "The data stays for further commands:",
            "数据保留，可继续查看："
        )
    )?;
    outln!("  poskit host check --data {}", r.host_dir.display())?;
    if let Some(t) = r.terminal_dirs.first() {
        outln!("  poskit pos --terminal {} journal", t.display())?;
        outln!("  poskit pos --terminal {} failures", t.display())?;
    }
    outln!("  poskit keys status --data {}", r.host_dir.display())?;
    outln!(
        "{}",
        tr(
            lang,
            "Keys and card numbers are sealed under key-encryption keys made for this demo (kek, 0600, in each directory); production keeps them elsewhere (--kek-file, POSKIT_KEK, an HSM).",
            "密钥和卡号以本次演示生成的密钥加密密钥（各目录中的 kek，权限 0600）封存；生产环境应将其保存在别处（--kek-file、POSKIT_KEK 或 HSM）。"
        )
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(code: &str) -> Group {
        let catalog = Catalog::builtin();
        let entry = match code.starts_with('L') {
            true => catalog.local(code),
            false => catalog.lookup(Table::CupPos, code),
        };
        assert!(entry.is_some(), "{code} is in the catalog");
        group_of(entry)
    }

    #[test]
    fn cardholder_declines_are_told_apart_from_system_failures() {
        for code in ["51", "54", "55", "75", "41", "14", "61"] {
            assert!(group(code) == Group::Cardholder, "{code}");
        }
        for code in ["96", "98", "A0", "L03"] {
            assert!(group(code) == Group::System, "{code}");
        }
        for code in ["03", "58", "L06"] {
            assert!(group(code) == Group::SetUp, "{code}");
        }
        assert!(group_of(None) == Group::System, "an unknown code");
    }
}
