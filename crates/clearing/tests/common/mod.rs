//! Records for the tests: realistic values, Chinese merchant names.
#![allow(dead_code)]

use poskit_clearing::{ClearingDate, DisputeRecord, TxnRecord};

pub const SHOP: &str = "北京市朝阳区某某便利店";
/// 29 characters: 58 GBK bytes, more than the 40 of the field.
pub const LONG_SHOP: &str = "上海市浦东新区陆家嘴环路一千号某某国际金融中心地下一层美食广场";

pub fn date() -> ClearingDate {
    ClearingDate::new(2025, 3, 4).unwrap()
}

pub fn txn(i: u32) -> TxnRecord {
    TxnRecord {
        acquirer_inst: "48020000".into(),
        forwarding_inst: "48020000".into(),
        stan: 100_000 + i,
        transmission_time: format!("0304{:06}", 100_000 + i % 100_000),
        pan_masked: "622202******7890".into(),
        amount_fen: 1_000 + u64::from(i) * 7,
        mti: "0200".into(),
        processing_code: "000000".into(),
        mcc: "5411".into(),
        tid: "10000001".into(),
        mid: "898310048160001".into(),
        rrn: format!("{:012}", 500_000 + i),
        pos_condition: "00".into(),
        auth_code: format!("A{:05}", i % 100_000),
        receiving_inst: "01020000".into(),
        original_stan: i.is_multiple_of(3).then_some(i + 1),
        response_code: "00".into(),
        entry_mode: "051".into(),
        fee_receivable_fen: i64::from(i % 50) * 3,
        fee_payable_fen: -(i64::from(i % 7)),
        switch_fee_fen: -2,
        original_time: i.is_multiple_of(3).then(|| "0303235959".to_owned()),
        issuer_inst: "01020000".into(),
        reversal: i % 5 == 1,
        voided: i % 7 == 2,
        clearing_mmdd: "0304".into(),
        merchant_name: if i.is_multiple_of(2) {
            SHOP.into()
        } else {
            format!("Shop {i}")
        },
        currency: "156".into(),
        merchant_fee_fen: -(i64::from(i % 11)),
    }
}

/// What an ACOMN file gives back of a record: the ACOMA-only fields empty.
pub fn as_acomn(mut record: TxnRecord) -> TxnRecord {
    record.reversal = false;
    record.voided = false;
    record.clearing_mmdd = String::new();
    record.merchant_name = String::new();
    record.currency = String::new();
    record.merchant_fee_fen = 0;
    record
}

pub fn dispute(i: u32) -> DisputeRecord {
    DisputeRecord {
        error_type: "E32".into(),
        acquirer_inst: "48020000".into(),
        forwarding_inst: "48020000".into(),
        stan: 200_000 + i,
        transmission_time: "0304101112".into(),
        pan_masked: "622202******7890".into(),
        amount_fen: 12_345,
        mti: "0422".into(),
        processing_code: "220000".into(),
        tid: "10000001".into(),
        previous_rrn: "000000500001".into(),
        previous_stan: Some(100_001),
        response_code: "00".into(),
        fee_receivable_fen: 12,
        fee_payable_fen: -34,
        reason_code: "4502".into(),
        previous_time: "0301120000".into(),
        previous_clearing_mmdd: "0301".into(),
        previous_amount_fen: 12_345,
        mid: "898310048160001".into(),
        clearing_mmdd: "0304".into(),
        merchant_name: SHOP.into(),
    }
}
