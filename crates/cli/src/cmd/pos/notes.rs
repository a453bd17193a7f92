//! The terminal engine's notes and failure causes in the operator's language: the engine
//! gives them as data ([`Note`], [`Cause`]), the words live here, at the edge.

use poskit_codes::{Catalog, Lang, Table};
use poskit_domain::AmountFen;
use poskit_terminal::note::{Cause, Note};

use crate::cmd::locale::tr;

/// `en` or `zh`, whichever the operator reads.
fn say(lang: Lang, en: String, zh: String) -> String {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// A host code's meaning in `lang` (the catalog's words; an unknown code says so).
fn meaning(code: &str, lang: Lang) -> String {
    let catalog = Catalog::builtin();
    match catalog.lookup(Table::CupPos, code) {
        Some(entry) => entry.meaning(lang).to_owned(),
        None => catalog.unknown_code_guide().title(lang).to_owned(),
    }
}

/// A failure's cause, one line.
pub(crate) fn cause_text(cause: &Cause, lang: Lang) -> String {
    match cause {
        Cause::Timeout => say(
            lang,
            "no answer from the host within the timeout".into(),
            "超时未收到主机应答".into(),
        ),
        Cause::NotSent { detail } => say(
            lang,
            format!("cannot reach the host {detail}"),
            format!("无法连接主机 {detail}"),
        ),
        Cause::AnswerMacBad => say(
            lang,
            "the answer failed its MAC check".into(),
            "应答的 MAC 校验失败".into(),
        ),
        Cause::ApprovalMacBad => say(
            lang,
            "the approval's MAC did not verify".into(),
            "批准应答的 MAC 校验失败".into(),
        ),
        Cause::PrinterFailed => say(
            lang,
            "the printer failed after the approval".into(),
            "批准后打印机故障".into(),
        ),
        Cause::HostAnswered { code } => say(
            lang,
            format!("the host answered {code}"),
            format!("主机应答 {code}"),
        ),
        Cause::Declined { code } => say(
            lang,
            format!("declined by the host ({})", meaning(code.as_str(), lang)),
            format!("主机拒绝（{}）", meaning(code.as_str(), lang)),
        ),
        Cause::AdviceDeclined { code } => say(
            lang,
            format!("advice declined by the host ({code})"),
            format!("主机拒绝了通知（{code}）"),
        ),
        Cause::Unbuildable { detail } => say(
            lang,
            format!("cannot build the request: {detail}"),
            format!("无法组成请求：{detail}"),
        ),
        Cause::AdviceGivenUp { last } => say(
            lang,
            format!(
                "{}: the stored advice is given up — contact acquirer",
                cause_text(last, lang)
            ),
            format!(
                "{}：已放弃该笔存储的通知——请联系收单机构",
                cause_text(last, lang)
            ),
        ),
        Cause::ReversalRefused { stan, code } => say(
            lang,
            format!(
                "the host refused the reversal of trace {stan:06} with {code}: reversal failed — contact acquirer"
            ),
            format!("主机以 {code} 拒绝了流水号 {stan:06} 的冲正：冲正失败——请联系收单机构"),
        ),
        Cause::ReversalGaveUp {
            stan,
            attempts,
            last,
        } => say(
            lang,
            format!(
                "reversal of trace {stan:06} failed {attempts} times ({}): reversal failed — contact acquirer",
                cause_text(last, lang)
            ),
            format!(
                "流水号 {stan:06} 的冲正 {attempts} 次均失败（{}）：冲正失败——请联系收单机构",
                cause_text(last, lang)
            ),
        ),
        Cause::Recorded(text) => text.clone(),
    }
}

/// A note, one line.
pub(crate) fn note_text(note: &Note, lang: Lang) -> String {
    match note {
        Note::Cause(cause) => cause_text(cause, lang),
        Note::Reversing { stan, reason } => say(
            lang,
            format!("reversing trace {stan:06} (reason {reason})"),
            format!("正在冲正流水号 {stan:06}（原因码 {reason}）"),
        ),
        Note::ReversingToBeSure { stan, code } => say(
            lang,
            format!(
                "{code} does not say whether money moved: reversing trace {stan:06} to be sure"
            ),
            format!("{code} 无法确定是否扣款：为稳妥起见冲正流水号 {stan:06}"),
        ),
        Note::ReversalResent { code } => say(
            lang,
            format!("the host answered the reversal with {code}: signing in and sending it again"),
            format!("主机对冲正应答 {code}：重新签到后再次发送"),
        ),
        Note::ReversalDone { stan } => say(
            lang,
            format!("reversal of trace {stan:06} done: the customer is not charged"),
            format!("流水号 {stan:06} 冲正成功：顾客没有被扣款"),
        ),
        Note::ReversalRefused { stan, code } => say(
            lang,
            format!(
                "reversal of trace {stan:06} refused ({code}): reversal failed — contact acquirer"
            ),
            format!("流水号 {stan:06} 的冲正被拒绝（{code}）：冲正失败——请联系收单机构"),
        ),
        Note::ReversalNotThrough { cause } => say(
            lang,
            format!(
                "the reversal did not get through ({}); it goes out again before the next transaction",
                cause_text(cause, lang)
            ),
            format!(
                "冲正未送达（{}）；下一笔交易之前再次发送",
                cause_text(cause, lang)
            ),
        ),
        Note::ReversalWaiting { stan, cause } => say(
            lang,
            format!(
                "the reversal of trace {stan:06} has not reached the host ({}); new transactions wait for it",
                cause_text(cause, lang)
            ),
            format!(
                "流水号 {stan:06} 的冲正尚未送达主机（{}）；新交易须等它完成",
                cause_text(cause, lang)
            ),
        ),
        Note::ReversalGaveUp { stan } => say(
            lang,
            format!(
                "reversal of trace {stan:06} failed on every attempt: reversal failed — contact acquirer"
            ),
            format!("流水号 {stan:06} 的冲正每次尝试均失败：冲正失败——请联系收单机构"),
        ),
        other => advice_or_session_text(other, lang),
    }
}

/// Notes about advices, settlement and the session.
fn advice_or_session_text(note: &Note, lang: Lang) -> String {
    match note {
        Note::AdviceDelivered { kind, stan, code } => say(
            lang,
            format!(
                "stored {} of trace {stan:06} delivered ({code})",
                kind.name_en()
            ),
            format!(
                "存储的{}（流水号 {stan:06}）已送达（{code}）",
                kind.name_zh()
            ),
        ),
        Note::AdviceNotDelivered { cause } => say(
            lang,
            format!(
                "stored advice not delivered ({}); it stays queued",
                cause_text(cause, lang)
            ),
            format!("存储的通知未送达（{}）；继续排队", cause_text(cause, lang)),
        ),
        Note::HostTotalsDiffer {
            debit_count,
            debit_fen,
            credit_count,
            credit_fen,
        } => {
            let n = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:03}"));
            let f =
                |v: Option<AmountFen>| v.map_or_else(|| "?".to_owned(), |v| v.fen().to_string());
            let (dc, df, cc, cf) = (
                n(*debit_count),
                f(*debit_fen),
                n(*credit_count),
                f(*credit_fen),
            );
            say(
                lang,
                format!(
                    "the host's totals differ (host: {dc} debits {df} fen, {cc} credits {cf} fen): uploading the batch"
                ),
                format!(
                    "主机的总数不同（主机：借记 {dc} 笔 {df} 分，贷记 {cc} 笔 {cf} 分）：正在批上送"
                ),
            )
        }
        Note::BatchFull { batch, txns } => say(
            lang,
            format!(
                "batch {batch:06} holds {txns} transactions, the most its settlement can count: settle first"
            ),
            format!("批次 {batch:06} 已有 {txns} 笔交易，结算能计的最多笔数：请先结算"),
        ),
        Note::StepEnded { operation, code } => say(
            lang,
            format!("{operation}: {code}"),
            format!("{operation}：{code}"),
        ),
        Note::AnswerIgnored { stan } => say(
            lang,
            format!(
                "an answer to trace {stan:06} was ignored: its amount or processing code is missing or not the request's"
            ),
            format!("流水号 {stan:06} 的一个应答被忽略：其金额或处理码缺失或与请求不符"),
        ),
        Note::AnswerMalformed { stan, field } => {
            let (en, zh) = match field {
                37 => (
                    "a retrieval reference number (12 characters)",
                    "检索参考号（12 位）",
                ),
                _ => ("an authorization code (6 characters)", "授权码（6 位）"),
            };
            say(
                lang,
                format!("an answer to trace {stan:06} was ignored: its field {field} is not {en}"),
                format!("流水号 {stan:06} 的一个应答被忽略：其第 {field} 域不是{zh}"),
            )
        }
        Note::BatchSettled { batch } => say(
            lang,
            format!("batch {batch:06} settled"),
            format!("批次 {batch:06} 已结算"),
        ),
        Note::BatchOpen { batch } => say(
            lang,
            format!("batch {batch:06}"),
            format!("批次 {batch:06}"),
        ),
        Note::KeysUnloadable { detail } => say(
            lang,
            format!("the working keys cannot be loaded: {detail}"),
            format!("无法装载工作密钥：{detail}"),
        ),
        other => fixed_text(other, lang).to_owned(),
    }
}

/// Notes without data.
fn fixed_text(note: &Note, lang: Lang) -> &'static str {
    let (en, zh) = match note {
        Note::Busy => ("another operation is in progress", "另一笔操作正在进行"),
        Note::NotSignedIn => ("not signed in: sign in first", "未签到：请先签到"),
        Note::NothingWaiting => (
            "nothing left waiting for the host",
            "没有待发送给主机的交易",
        ),
        Note::NothingDone => ("nothing was done", "未做任何操作"),
        Note::HostAsksSignIn => ("the host asks for a new sign-in", "主机要求重新签到"),
        Note::SettlementWithoutCode => (
            "the settlement answer has no reconciliation code in field 48",
            "结算应答的 48 域没有对账结果",
        ),
        Note::UploadRefused => ("the batch upload was refused", "批上送被拒绝"),
        Note::BatchEndRefused => ("the batch end was refused", "批上送结束被拒绝"),
        Note::SettleAgain => ("settle again", "请再次结算"),
        Note::SigningInAgain => (
            "signing in again (new keys and batch); then the operator may retry",
            "正在重新签到（新密钥和批次）；之后操作员可以重试",
        ),
        Note::TraceAlreadyKnown => (
            "the host already has this trace: check whether the first transaction went through (poskit pos journal) before doing anything else",
            "主机已有此流水号：先查看第一笔交易是否成功（poskit pos journal），再做其他操作",
        ),
        Note::NotRetried => ("not retried automatically", "不自动重试"),
        Note::AdviceStored => (
            "stored: it is sent again before the next transaction and before settlement",
            "已存储：下一笔交易之前和结算之前会再次发送",
        ),
        Note::AdvicesBeforeSettlement => (
            "a stored advice must reach the host before the settlement",
            "存储的通知必须在结算之前送达主机",
        ),
        Note::SignInRefused => ("sign-in refused", "签到被拒绝"),
        // Every note with data is worded above.
        _ => unreachable!("worded by note_text: {note:?}"),
    };
    tr(lang, en, zh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poskit_domain::ResponseCode;
    use poskit_domain::TransactionKind;
    use poskit_terminal::code::LocalCode;

    fn every_note() -> Vec<Note> {
        let cause = Cause::ReversalGaveUp {
            stan: 7,
            attempts: 3,
            last: Box::new(Cause::HostAnswered {
                code: ResponseCode::SYSTEM_MALFUNCTION,
            }),
        };
        vec![
            Note::Cause(cause.clone()),
            Note::Cause(Cause::Declined {
                code: ResponseCode::INSUFFICIENT_FUNDS,
            }),
            Note::Cause(Cause::AdviceGivenUp {
                last: Box::new(Cause::Timeout),
            }),
            Note::Busy,
            Note::NotSignedIn,
            Note::BatchFull {
                batch: 1,
                txns: 999,
            },
            Note::NothingWaiting,
            Note::NothingDone,
            Note::StepEnded {
                operation: "sign-in",
                code: LocalCode::NO_ANSWER.into(),
            },
            Note::AnswerIgnored { stan: 3 },
            Note::AnswerMalformed { stan: 3, field: 37 },
            Note::AnswerMalformed { stan: 3, field: 38 },
            Note::HostAsksSignIn,
            Note::HostTotalsDiffer {
                debit_count: Some(2),
                debit_fen: Some(AmountFen::new(2800).unwrap()),
                credit_count: None,
                credit_fen: Some(AmountFen::ZERO),
            },
            Note::SettlementWithoutCode,
            Note::UploadRefused,
            Note::BatchEndRefused,
            Note::SettleAgain,
            Note::BatchSettled { batch: 2 },
            Note::Reversing {
                stan: 4,
                reason: ResponseCode::ISSUER_TIMEOUT,
            },
            Note::ReversingToBeSure {
                stan: 4,
                code: ResponseCode::ERROR,
            },
            Note::SigningInAgain,
            Note::TraceAlreadyKnown,
            Note::NotRetried,
            Note::ReversalResent {
                code: ResponseCode::MAC_ERROR,
            },
            Note::ReversalDone { stan: 5 },
            Note::ReversalRefused {
                stan: 5,
                code: ResponseCode::INVALID_TRANSACTION,
            },
            Note::ReversalNotThrough {
                cause: Cause::Timeout,
            },
            Note::ReversalWaiting { stan: 6, cause },
            Note::ReversalGaveUp { stan: 6 },
            Note::AdviceDelivered {
                kind: TransactionKind::Refund,
                stan: 8,
                code: ResponseCode::APPROVED,
            },
            Note::AdviceNotDelivered {
                cause: Cause::AnswerMacBad,
            },
            Note::AdviceStored,
            Note::AdvicesBeforeSettlement,
            Note::SignInRefused,
            Note::KeysUnloadable {
                detail: "no keys in field 62".into(),
            },
            Note::BatchOpen { batch: 9 },
        ]
    }

    fn has_han(text: &str) -> bool {
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_note_is_worded_in_chinese_for_chinese_and_without_chinese_for_english() {
        for note in every_note() {
            let zh = note_text(&note, Lang::Zh);
            let en = note_text(&note, Lang::En);
            assert!(!en.is_empty() && !has_han(&en), "{note:?}: {en}");
            // Codes and operation names stay as they are (sign-in: L03): a note with only
            // data needs no Chinese word.
            if !matches!(note, Note::StepEnded { .. }) {
                assert!(has_han(&zh), "{note:?}: {zh}");
            }
        }
    }

    #[test]
    fn a_nested_cause_is_said_inside_its_parent_in_the_same_language() {
        let cause = Cause::ReversalGaveUp {
            stan: 12,
            attempts: 3,
            last: Box::new(Cause::Timeout),
        };
        let en = cause_text(&cause, Lang::En);
        assert!(
            en.contains("000012") && en.contains("3 times") && en.contains("no answer"),
            "{en}"
        );
        let zh = cause_text(&cause, Lang::Zh);
        assert!(zh.contains("000012") && zh.contains("超时"), "{zh}");
    }

    #[test]
    fn a_decline_is_explained_with_the_catalogs_meaning_in_the_language() {
        let cause = Cause::Declined {
            code: ResponseCode::INSUFFICIENT_FUNDS,
        };
        let entry = Catalog::builtin().lookup(Table::CupPos, "51").expect("51");
        assert!(cause_text(&cause, Lang::En).contains(entry.meaning(Lang::En)));
        assert!(cause_text(&cause, Lang::Zh).contains(entry.meaning(Lang::Zh)));
    }
}
