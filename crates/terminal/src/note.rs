//! What the engine tells the operator besides the code, as data: the CLI says it in the
//! operator's language, the simulation counts it, the journal keeps a failure's cause as a
//! stable code ([`Cause::code`]) that no language change rewrites.

use poskit_domain::{AmountFen, ResponseCode, TransactionKind as K};

use crate::code::Code;

/// Why a request (or a reversal, or a stored advice) failed: the failure log's cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// No answer within the response timeout.
    Timeout,
    /// The request never left: the connection to the host failed (`detail`: the
    /// system's words, e.g. "Connection refused (os error 111)").
    NotSent { detail: String },
    /// An answer to a reversal or an advice failed its MAC check.
    AnswerMacBad,
    /// An approval failed its MAC check (the terminal reverses it with reason A0).
    ApprovalMacBad,
    /// The printer failed after an approval (the terminal reverses it with reason 96).
    PrinterFailed,
    /// The host answered `code`, which means it could not process the request now.
    HostAnswered { code: ResponseCode },
    /// The host declined the request with `code`.
    Declined { code: ResponseCode },
    /// The host declined a stored advice with `code`.
    AdviceDeclined { code: ResponseCode },
    /// The request could not be built from its data (`detail`: the builder's error).
    Unbuildable { detail: String },
    /// A stored advice was given up (it can never be sent): contact the acquirer.
    AdviceGivenUp { last: Box<Cause> },
    /// The host refused the reversal of trace `stan` with `code`: contact the acquirer.
    ReversalRefused { stan: u32, code: ResponseCode },
    /// Every attempt of the reversal of trace `stan` failed: contact the acquirer.
    ReversalGaveUp {
        stan: u32,
        attempts: u32,
        last: Box<Cause>,
    },
    /// A cause written by a version of poskit that logged text (read back as it was).
    Recorded(String),
}

/// One thing that happened in an operation besides its code, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Why the operation failed.
    Cause(Cause),
    /// Another operation is in progress.
    Busy,
    /// The terminal is not signed in.
    NotSignedIn,
    /// The open batch holds as many transactions as its settlement can count.
    BatchFull { batch: u32, txns: u32 },
    /// A flush found no reversal and no advice waiting.
    NothingWaiting,
    /// The driver ran out of things to do without an outcome.
    NothingDone,
    /// A step after the operation's own result ended with `code` (a sign-in after a bad MAC).
    StepEnded { operation: &'static str, code: Code },
    /// An answer naming trace `stan` was ignored: its amount or processing code was wrong.
    AnswerIgnored { stan: u32 },
    /// An answer to trace `stan` was ignored: its `field` (37 or 38) is not a retrieval
    /// reference number (12 characters) or an authorization code (6).
    AnswerMalformed { stan: u32, field: u8 },
    /// The host asked for a new sign-in (header processing requirement 3).
    HostAsksSignIn,
    /// The host's settlement totals differ from the terminal's (field 48 of its answer;
    /// `None` where the answer's digits could not be read).
    HostTotalsDiffer {
        debit_count: Option<u32>,
        debit_fen: Option<AmountFen>,
        credit_count: Option<u32>,
        credit_fen: Option<AmountFen>,
    },
    /// The settlement answer had no reconciliation code in field 48.
    SettlementWithoutCode,
    /// The host refused the batch upload.
    UploadRefused,
    /// The host refused the batch end.
    BatchEndRefused,
    /// The settlement stopped: run it again.
    SettleAgain,
    /// Batch `batch` is settled and closed.
    BatchSettled { batch: u32 },
    /// Trace `stan` is being reversed with field 39 `reason` (the note before says why).
    Reversing { stan: u32, reason: ResponseCode },
    /// The answer `code` leaves open whether money moved: trace `stan` is reversed to be sure.
    ReversingToBeSure { stan: u32, code: ResponseCode },
    /// Keys or batch trouble: the terminal signs in again; then the operator may retry.
    SigningInAgain,
    /// 94: the host already has this trace.
    TraceAlreadyKnown,
    /// A decline that is not retried automatically.
    NotRetried,
    /// The host answered the reversal `code`: sign in, then send it again.
    ReversalResent { code: ResponseCode },
    /// The reversal of trace `stan` is done: the customer is not charged.
    ReversalDone { stan: u32 },
    /// The host refused the reversal of trace `stan` with `code`: contact the acquirer.
    ReversalRefused { stan: u32, code: ResponseCode },
    /// This operation's reversal did not get through; it goes out before the next one.
    ReversalNotThrough { cause: Cause },
    /// An earlier transaction's reversal (trace `stan`) has not reached the host; new
    /// transactions wait for it.
    ReversalWaiting { stan: u32, cause: Cause },
    /// The reversal of trace `stan` failed on every attempt: contact the acquirer.
    ReversalGaveUp { stan: u32 },
    /// A stored advice (`kind`, trace `stan`) reached the host, which answered `code`.
    AdviceDelivered {
        kind: K,
        stan: u32,
        code: ResponseCode,
    },
    /// A stored advice did not get through; it stays queued.
    AdviceNotDelivered { cause: Cause },
    /// This operation's advice is stored: it goes out before the next transaction and
    /// before settlement.
    AdviceStored,
    /// A stored advice must reach the host before the settlement.
    AdvicesBeforeSettlement,
    /// The host refused the sign-in.
    SignInRefused,
    /// The working keys of the sign-in answer cannot be loaded (`detail`: why).
    KeysUnloadable { detail: String },
    /// Signed in; batch `batch` is open.
    BatchOpen { batch: u32 },
}

impl Cause {
    /// A stable, language-neutral code with the cause's data (`declined:05`,
    /// `reversal-gave-up:000012:3:timeout`): what the journal keeps. Free text (a system's
    /// detail, a nested cause) comes last, so [`Cause::parse`] can take it whole.
    pub fn code(&self) -> String {
        match self {
            Cause::Timeout => "timeout".into(),
            Cause::NotSent { detail } => format!("not-sent:{detail}"),
            Cause::AnswerMacBad => "answer-mac-bad".into(),
            Cause::ApprovalMacBad => "approval-mac-bad".into(),
            Cause::PrinterFailed => "printer-failed".into(),
            Cause::HostAnswered { code } => format!("host-answered:{code}"),
            Cause::Declined { code } => format!("declined:{code}"),
            Cause::AdviceDeclined { code } => format!("advice-declined:{code}"),
            Cause::Unbuildable { detail } => format!("unbuildable:{detail}"),
            Cause::AdviceGivenUp { last } => format!("advice-given-up:{}", last.code()),
            Cause::ReversalRefused { stan, code } => format!("reversal-refused:{stan:06}:{code}"),
            Cause::ReversalGaveUp {
                stan,
                attempts,
                last,
            } => format!("reversal-gave-up:{stan:06}:{attempts}:{}", last.code()),
            Cause::Recorded(text) => text.clone(),
        }
    }

    /// The cause of a [`Cause::code`]; any other text (a cause logged as text by an
    /// earlier version) is [`Cause::Recorded`].
    pub fn parse(text: &str) -> Cause {
        Cause::parse_code(text).unwrap_or_else(|| Cause::Recorded(text.to_owned()))
    }

    fn parse_code(text: &str) -> Option<Cause> {
        let (key, rest) = text.split_once(':').unwrap_or((text, ""));
        let owned = || rest.to_owned();
        let code = || ResponseCode::parse(rest);
        let cause = match key {
            "timeout" => Cause::Timeout,
            "not-sent" => Cause::NotSent { detail: owned() },
            "answer-mac-bad" => Cause::AnswerMacBad,
            "approval-mac-bad" => Cause::ApprovalMacBad,
            "printer-failed" => Cause::PrinterFailed,
            "host-answered" => Cause::HostAnswered { code: code()? },
            "declined" => Cause::Declined { code: code()? },
            "advice-declined" => Cause::AdviceDeclined { code: code()? },
            "unbuildable" => Cause::Unbuildable { detail: owned() },
            "advice-given-up" => Cause::AdviceGivenUp {
                last: Box::new(Cause::parse_code(rest)?),
            },
            "reversal-refused" => {
                let (stan, code) = rest.split_once(':')?;
                Cause::ReversalRefused {
                    stan: stan.parse().ok()?,
                    code: ResponseCode::parse(code)?,
                }
            }
            "reversal-gave-up" => {
                let mut parts = rest.splitn(3, ':');
                Cause::ReversalGaveUp {
                    stan: parts.next()?.parse().ok()?,
                    attempts: parts.next()?.parse().ok()?,
                    last: Box::new(Cause::parse_code(parts.next()?)?),
                }
            }
            _ => return None,
        };
        Some(cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_cause() -> Vec<Cause> {
        let nested = Cause::NotSent {
            detail: "127.0.0.1:1: Connection refused (os error 111)".into(),
        };
        vec![
            Cause::Timeout,
            nested.clone(),
            Cause::AnswerMacBad,
            Cause::ApprovalMacBad,
            Cause::PrinterFailed,
            Cause::HostAnswered {
                code: ResponseCode::SYSTEM_MALFUNCTION,
            },
            Cause::Declined {
                code: ResponseCode::INSUFFICIENT_FUNDS,
            },
            Cause::AdviceDeclined {
                code: ResponseCode::ORIGINAL_NOT_FOUND,
            },
            Cause::Unbuildable {
                detail: "field 2: not digits".into(),
            },
            Cause::AdviceGivenUp {
                last: Box::new(Cause::Unbuildable {
                    detail: "field 37: empty".into(),
                }),
            },
            Cause::ReversalRefused {
                stan: 12,
                code: ResponseCode(*b"05"),
            },
            Cause::ReversalGaveUp {
                stan: 999_999,
                attempts: 3,
                last: Box::new(nested),
            },
        ]
    }

    #[test]
    fn every_cause_code_parses_back_to_its_cause() {
        for cause in every_cause() {
            assert_eq!(Cause::parse(&cause.code()), cause, "{}", cause.code());
        }
    }

    #[test]
    fn text_logged_by_an_earlier_version_reads_back_as_recorded() {
        let old = "declined by the host (Insufficient funds)";
        assert_eq!(Cause::parse(old), Cause::Recorded(old.into()));
        let old = "reversal of trace 000012 failed 3 times (no answer): contact acquirer";
        assert_eq!(Cause::parse(old), Cause::Recorded(old.into()));
        assert_eq!(
            Cause::parse("reversal-refused:x:05"),
            Cause::Recorded("reversal-refused:x:05".into()),
            "a code with bad data is not guessed at"
        );
        for bad in [
            "declined:5",
            "declined:051",
            "host-answered:",
            "reversal-refused:000012:L03",
        ] {
            assert_eq!(
                Cause::parse(bad),
                Cause::Recorded(bad.into()),
                "a cause whose response code is not two letters or digits is not guessed at"
            );
        }
    }
}
