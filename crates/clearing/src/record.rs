//! The typed records: what poskit's other parts use. Amounts are integer fen (`_fen`);
//! fees are signed (positive = credit to the acquirer); times are the files' digit
//! strings (`MMDDhhmmss`, `MMDD`). PANs are only ever held masked (first 6, last 4).

use serde::Serialize;

use crate::gbk;
use crate::kind::FileKind;
use crate::profile::Key;
use crate::reader::RawRecord;

/// A transaction of an ACOMN or ACOMA file. Read from ACOMN, the ACOMA-only fields are
/// empty (`reversal`, `voided` false, strings empty, `merchant_fee_fen` 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TxnRecord {
    /// Acquiring institution id (11).
    pub acquirer_inst: String,
    pub forwarding_inst: String,
    /// Field 11 of the acquirer host's message to the switch.
    pub stan: u32,
    /// `MMDDhhmmss` (field 7).
    pub transmission_time: String,
    /// First 6 and last 4 digits, the rest `*`.
    pub pan_masked: String,
    pub amount_fen: u64,
    pub mti: String,
    pub processing_code: String,
    pub mcc: String,
    pub tid: String,
    pub mid: String,
    pub rrn: String,
    pub pos_condition: String,
    pub auth_code: String,
    pub receiving_inst: String,
    /// `None` is written `000000` (a STAN is never 0).
    pub original_stan: Option<u32>,
    pub response_code: String,
    pub entry_mode: String,
    pub fee_receivable_fen: i64,
    pub fee_payable_fen: i64,
    pub switch_fee_fen: i64,
    /// `MMDDhhmmss`; `None` is written as zeros.
    pub original_time: Option<String>,
    pub issuer_inst: String,
    /// ACOMA 37: `R`.
    pub reversal: bool,
    /// ACOMA 38: `C`.
    pub voided: bool,
    /// ACOMA 39, `MMDD`. Written empty, it becomes the file's date.
    pub clearing_mmdd: String,
    /// ACOMA 41, name and address (GBK in the file; cut to 40 bytes when written).
    pub merchant_name: String,
    /// ACOMA 42, ISO 4217 numeric (`156`).
    pub currency: String,
    /// ACOMA 44.
    pub merchant_fee_fen: i64,
}

/// A dispute or error of an AERRA file; the `previous_*` fields link it to the
/// transaction it corrects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DisputeRecord {
    /// The E-code (`E32` credit adjustment, ...).
    pub error_type: String,
    pub acquirer_inst: String,
    pub forwarding_inst: String,
    pub stan: u32,
    pub transmission_time: String,
    pub pan_masked: String,
    pub amount_fen: u64,
    pub mti: String,
    pub processing_code: String,
    pub tid: String,
    pub previous_rrn: String,
    /// `None` is written `000000`.
    pub previous_stan: Option<u32>,
    pub response_code: String,
    pub fee_receivable_fen: i64,
    pub fee_payable_fen: i64,
    /// 4 digits (spec §7: 4502 sale failed but debited, 9601 ...).
    pub reason_code: String,
    /// `MMDDhhmmss`.
    pub previous_time: String,
    pub previous_clearing_mmdd: String,
    pub previous_amount_fen: u64,
    pub mid: String,
    /// The file's clearing date `MMDD` (a guessed field, 40). Written empty, it becomes the
    /// file's date.
    pub clearing_mmdd: String,
    pub merchant_name: String,
}

/// The records of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Records {
    Txn(Vec<TxnRecord>),
    Dispute(Vec<DisputeRecord>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Txn(records) => records.len(),
            Records::Dispute(records) => records.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A value a record gives for a field, as the writer encodes it.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Fee(i64),
    /// A one-byte flag: the letter when set, a space when not.
    Flag(bool, u8),
    /// Written as the field's padding.
    Absent,
}

mod sealed {
    pub trait Sealed {}
}

/// A typed record that files hold: [`TxnRecord`] or [`DisputeRecord`].
pub trait ClearingRecord: sealed::Sealed + Sized {
    /// Whether files of `kind` hold this record.
    fn fits(kind: FileKind) -> bool;
    /// What the record holds, named for errors ("transactions").
    const NAME: &'static str;
    #[doc(hidden)]
    fn value(&self, key: Key) -> Value<'_>;
    #[doc(hidden)]
    fn from_raw(raw: &RawRecord<'_>) -> Self;
}

fn text(raw: &RawRecord<'_>, key: Key) -> String {
    raw.key(key)
        .and_then(gbk::decode)
        .map(|text| text.into_owned())
        .unwrap_or_default()
}

fn nonzero(raw: &RawRecord<'_>, key: Key) -> Option<u32> {
    let value = raw.key_u64(key);
    (value != 0).then(|| u32::try_from(value).unwrap_or(u32::MAX))
}

fn owned(raw: &RawRecord<'_>, key: Key) -> String {
    raw.key_str(key).to_owned()
}

impl sealed::Sealed for TxnRecord {}

impl ClearingRecord for TxnRecord {
    const NAME: &'static str = "transactions";

    fn fits(kind: FileKind) -> bool {
        kind.holds_transactions()
    }

    fn value(&self, key: Key) -> Value<'_> {
        use Value::{Fee, Num, Str};
        match key {
            Key::AcquirerInst => Str(&self.acquirer_inst),
            Key::ForwardingInst => Str(&self.forwarding_inst),
            Key::Stan => Num(self.stan.into()),
            Key::TransmissionTime => Str(&self.transmission_time),
            Key::PanMasked => Str(&self.pan_masked),
            Key::AmountFen => Num(self.amount_fen),
            Key::Mti => Str(&self.mti),
            Key::ProcessingCode => Str(&self.processing_code),
            Key::Mcc => Str(&self.mcc),
            Key::Tid => Str(&self.tid),
            Key::Mid => Str(&self.mid),
            Key::Rrn => Str(&self.rrn),
            Key::PosCondition => Str(&self.pos_condition),
            Key::AuthCode => Str(&self.auth_code),
            Key::ReceivingInst => Str(&self.receiving_inst),
            Key::OriginalStan => Num(self.original_stan.unwrap_or(0).into()),
            Key::ResponseCode => Str(&self.response_code),
            Key::EntryMode => Str(&self.entry_mode),
            Key::FeeReceivable => Fee(self.fee_receivable_fen),
            Key::FeePayable => Fee(self.fee_payable_fen),
            Key::SwitchFee => Fee(self.switch_fee_fen),
            Key::OriginalTime => self.original_time.as_deref().map_or(Value::Absent, Str),
            Key::IssuerInst => Str(&self.issuer_inst),
            Key::ReversalFlag => Value::Flag(self.reversal, b'R'),
            Key::VoidFlag => Value::Flag(self.voided, b'C'),
            Key::ClearingMmdd => Str(&self.clearing_mmdd),
            Key::MerchantName => Str(&self.merchant_name),
            Key::Currency => Str(&self.currency),
            Key::MerchantFee => Fee(self.merchant_fee_fen),
            _ => Value::Absent,
        }
    }

    fn from_raw(raw: &RawRecord<'_>) -> TxnRecord {
        let original_time = owned(raw, Key::OriginalTime);
        TxnRecord {
            acquirer_inst: owned(raw, Key::AcquirerInst),
            forwarding_inst: owned(raw, Key::ForwardingInst),
            stan: raw.key_u64(Key::Stan) as u32,
            transmission_time: owned(raw, Key::TransmissionTime),
            pan_masked: owned(raw, Key::PanMasked),
            amount_fen: raw.key_u64(Key::AmountFen),
            mti: owned(raw, Key::Mti),
            processing_code: owned(raw, Key::ProcessingCode),
            mcc: owned(raw, Key::Mcc),
            tid: owned(raw, Key::Tid),
            mid: owned(raw, Key::Mid),
            rrn: owned(raw, Key::Rrn),
            pos_condition: owned(raw, Key::PosCondition),
            auth_code: owned(raw, Key::AuthCode),
            receiving_inst: owned(raw, Key::ReceivingInst),
            original_stan: nonzero(raw, Key::OriginalStan),
            response_code: owned(raw, Key::ResponseCode),
            entry_mode: owned(raw, Key::EntryMode),
            fee_receivable_fen: raw.key_fee(Key::FeeReceivable),
            fee_payable_fen: raw.key_fee(Key::FeePayable),
            switch_fee_fen: raw.key_fee(Key::SwitchFee),
            original_time: (!original_time.bytes().all(|b| b == b'0')).then_some(original_time),
            issuer_inst: owned(raw, Key::IssuerInst),
            reversal: raw.key_flag(Key::ReversalFlag),
            voided: raw.key_flag(Key::VoidFlag),
            clearing_mmdd: owned(raw, Key::ClearingMmdd),
            merchant_name: text(raw, Key::MerchantName),
            currency: owned(raw, Key::Currency),
            merchant_fee_fen: raw.key_fee(Key::MerchantFee),
        }
    }
}

impl sealed::Sealed for DisputeRecord {}

impl ClearingRecord for DisputeRecord {
    const NAME: &'static str = "disputes";

    fn fits(kind: FileKind) -> bool {
        !kind.holds_transactions()
    }

    fn value(&self, key: Key) -> Value<'_> {
        use Value::{Fee, Num, Str};
        match key {
            Key::ErrorType => Str(&self.error_type),
            Key::AcquirerInst => Str(&self.acquirer_inst),
            Key::ForwardingInst => Str(&self.forwarding_inst),
            Key::Stan => Num(self.stan.into()),
            Key::TransmissionTime => Str(&self.transmission_time),
            Key::PanMasked => Str(&self.pan_masked),
            Key::AmountFen => Num(self.amount_fen),
            Key::Mti => Str(&self.mti),
            Key::ProcessingCode => Str(&self.processing_code),
            Key::Tid => Str(&self.tid),
            Key::PreviousRrn => Str(&self.previous_rrn),
            Key::PreviousStan => Num(self.previous_stan.unwrap_or(0).into()),
            Key::ResponseCode => Str(&self.response_code),
            Key::FeeReceivable => Fee(self.fee_receivable_fen),
            Key::FeePayable => Fee(self.fee_payable_fen),
            Key::ReasonCode => Str(&self.reason_code),
            Key::PreviousTime => Str(&self.previous_time),
            Key::PreviousClearingMmdd => Str(&self.previous_clearing_mmdd),
            Key::PreviousAmount => Num(self.previous_amount_fen),
            Key::Mid => Str(&self.mid),
            Key::ClearingMmdd => Str(&self.clearing_mmdd),
            Key::MerchantName => Str(&self.merchant_name),
            _ => Value::Absent,
        }
    }

    fn from_raw(raw: &RawRecord<'_>) -> DisputeRecord {
        DisputeRecord {
            error_type: owned(raw, Key::ErrorType),
            acquirer_inst: owned(raw, Key::AcquirerInst),
            forwarding_inst: owned(raw, Key::ForwardingInst),
            stan: raw.key_u64(Key::Stan) as u32,
            transmission_time: owned(raw, Key::TransmissionTime),
            pan_masked: owned(raw, Key::PanMasked),
            amount_fen: raw.key_u64(Key::AmountFen),
            mti: owned(raw, Key::Mti),
            processing_code: owned(raw, Key::ProcessingCode),
            tid: owned(raw, Key::Tid),
            previous_rrn: owned(raw, Key::PreviousRrn),
            previous_stan: nonzero(raw, Key::PreviousStan),
            response_code: owned(raw, Key::ResponseCode),
            fee_receivable_fen: raw.key_fee(Key::FeeReceivable),
            fee_payable_fen: raw.key_fee(Key::FeePayable),
            reason_code: owned(raw, Key::ReasonCode),
            previous_time: owned(raw, Key::PreviousTime),
            previous_clearing_mmdd: owned(raw, Key::PreviousClearingMmdd),
            previous_amount_fen: raw.key_u64(Key::PreviousAmount),
            mid: owned(raw, Key::Mid),
            clearing_mmdd: owned(raw, Key::ClearingMmdd),
            merchant_name: text(raw, Key::MerchantName),
        }
    }
}
