//! Conformance with `spec/cup-pos.md` as an independent client found it (issue 18): the
//! echo test without field 11, field 44 in financial answers, the MAK check value of the
//! key as used, what a frame cut short is answered with, and 40 for the §2.2 transactions
//! this host does not offer.

mod support;

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, MessageBuilder, Mti};
use poskit_domain::TransactionKind as K;
use poskit_host::client::{RequestSpec, Response, TestTerminal};
use poskit_host::demo::{self, Scenario};
use poskit_security::{
    CHECK_VALUE_BYTES, CipherFamily, KeyLayout, SecretKey, check_value, unwrap_key,
};
use support::*;

const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);
const HEADER: Header = Header(*b"\x60\x31\x00\x31\x10\x00");

/// A frame of `fields` (number, value as the builder takes it) under `mti`.
fn frame_of(mti: &[u8; 4], fields: &[(u8, &[u8])]) -> Vec<u8> {
    let mut builder = MessageBuilder::new(&CUP_POS, Mti(*mti));
    for (number, value) in fields {
        builder.set(*number, value).expect("a valid value");
    }
    let mut out = Vec::new();
    frame::encode_frame_into(&TPDU, &HEADER, &builder, &mut out);
    out
}

/// An echo test (0820, 60.3 = 301), with field 11 when `stan` is given.
fn echo(s: &Scenario, stan: Option<&[u8]>) -> Vec<u8> {
    let mut fields: Vec<(u8, &[u8])> = Vec::new();
    if let Some(stan) = stan {
        fields.push((11, stan));
    }
    fields.push((41, s.tid.as_bytes()));
    fields.push((42, s.mid.as_bytes()));
    fields.push((60, b"00000001301"));
    frame_of(b"0820", &fields)
}

fn exchange(t: &mut TestTerminal, frame: &[u8]) -> Response {
    t.send_raw(frame).unwrap();
    t.receive().unwrap()
}

#[test]
fn an_echo_test_without_field_11_is_answered_00_without_field_11() {
    let host = TestHost::start();
    let s = fleet(1);
    let mut t = host.terminal(&s.tid, &s.mid);
    let answer = exchange(&mut t, &echo(&s, None));
    assert_eq!(answer.mti, "0830");
    assert_code(&host, &answer, "00");
    assert_eq!(answer.field(11), None, "nothing to echo");
    assert_eq!(answer.field(41), Some(s.tid.as_str()));
    // Control: an echo with field 11 gets it back.
    let answer = exchange(&mut t, &echo(&s, Some(b"000042")));
    assert_code(&host, &answer, "00");
    assert_eq!(answer.field(11), Some("000042"));
    // A sign-off without field 11 is still a format error: only the echo may omit it.
    let sign_off = frame_of(
        b"0820",
        &[
            (41, s.tid.as_bytes()),
            (42, s.mid.as_bytes()),
            (60, b"00000001002"),
        ],
    );
    assert_code(&host, &exchange(&mut t, &sign_off), "30");
    host.assert_balanced();
}

/// Field 44 as §2.4 has it: issuer id AN11, then acquirer id AN11.
fn field44(issuer: &str, acquirer: &str) -> String {
    format!("{issuer:<11}{acquirer:<11}")
}

const DEMO_BANK: &str = "01020000";
const ACQUIRER: &str = "08010000";

#[test]
fn financial_answers_carry_field_44_approved_or_declined() {
    let host = TestHost::start();
    let s = fleet(2);
    let mut t = host.signed_in(&s);
    let expected = field44(DEMO_BANK, ACQUIRER);
    let sale_answer = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &sale_answer, "00");
    assert_eq!(sale_answer.field(44), Some(expected.as_str()), "0210");
    let balance = t.send(&balance_inquiry(&s)).unwrap();
    assert_code(&host, &balance, "00");
    assert_eq!(balance.field(44), Some(expected.as_str()), "balance");
    let pre = t.send(&pre_auth(&s, 500)).unwrap();
    assert_eq!(pre.mti, "0110");
    assert_eq!(pre.field(44), Some(expected.as_str()), "0110");
    let reversal = RequestSpec {
        stan: Some(pre.stan),
        reversal_reason: Some("98".into()),
        ..pre_auth(&s, 500)
    };
    let reversed = t.send(&reversal).unwrap();
    assert_eq!(reversed.mti, "0410");
    assert_code(&host, &reversed, "00");
    assert_eq!(reversed.field(44), Some(expected.as_str()), "0410");
    let mut refund = RequestSpec::new(K::Refund);
    refund.amount_fen = Some(100);
    refund.card = Some(manual(&s));
    refund.rrn = Some(field(&sale_answer, 37));
    refund.original_date = Some(field(&sale_answer, 13));
    let refunded = t.send(&refund).unwrap();
    assert_eq!(refunded.mti, "0230");
    assert_eq!(refunded.field(44), Some(expected.as_str()), "0230");
    // A decline carries it too.
    let poor = scenario("insufficient_funds");
    let mut t = host.signed_in(&poor);
    let declined = t.send(&sale(&poor, poor.amount_fen)).unwrap();
    assert_code(&host, &declined, poor.expected.as_str());
    assert_eq!(declined.field(44), Some(expected.as_str()), "a decline");
    // Management answers do not: 44 is a financial answer's field.
    assert_eq!(t.sign_in().unwrap().field(44), None);
    host.assert_balanced();
}

#[test]
fn the_mak_check_value_is_that_of_the_key_as_used() {
    let host = TestHost::start();
    let tmk = SecretKey::from_hex(demo::DEMO_TMK).unwrap();
    for (layout, code) in [
        (KeyLayout::Single, "001"),
        (KeyLayout::Double, "003"),
        (KeyLayout::DoubleWithTrack, "004"),
    ] {
        let s = fleet(3);
        let mut t = host.terminal(&s.tid, &s.mid);
        let mut spec = RequestSpec::new(K::SignIn);
        spec.network_code = Some(code.into());
        let answer = t.send(&spec).unwrap();
        assert_code(&host, &answer, "00");
        let f62 = hex::decode(field(&answer, 62)).unwrap();
        assert_eq!(f62.len(), layout.field62_bytes());
        let slot = layout.key_bytes() + CHECK_VALUE_BYTES;
        let mak = unwrap_key(
            CipherFamily::Des,
            &tmk,
            &f62[slot..slot + layout.key_bytes()],
        )
        .unwrap();
        let cv = &f62[2 * slot - CHECK_VALUE_BYTES..2 * slot];
        let k = &mak.dangerous_expose()[..8];
        // Single DES under K, which is 3DES under K‖K: what a K‖K terminal computes.
        let as_used = check_value(CipherFamily::Des, &SecretKey::from_bytes(k).unwrap()).unwrap();
        assert_eq!(cv, as_used, "layout {code}");
        if layout != KeyLayout::Single {
            assert!(mak.dangerous_expose()[8..].iter().all(|&b| b == 0), "K‖0");
            let as_delivered = check_value(CipherFamily::Des, &mak).unwrap();
            assert_ne!(cv, as_delivered, "layout {code}: not 3DES under K‖0");
        }
    }
}

#[test]
fn a_frame_cut_short_is_answered_30_with_what_can_be_read_of_11_41_42() {
    let host = TestHost::start();
    let s = fleet(4);
    let mut t = host.signed_in(&s);
    let (full, stan) = t.build(&sale(&s, 1_000)).unwrap();
    // Cut inside field 64 (the last): 11, 41 and 42 read, the frame does not.
    let mut cut = full[..full.len() - 3].to_vec();
    let len = u16::try_from(cut.len() - 2).unwrap();
    cut[..2].copy_from_slice(&len.to_be_bytes());
    let answer = exchange(&mut t, &cut);
    assert_eq!(answer.mti, "0210");
    assert_code(&host, &answer, "30");
    assert_eq!(answer.field(11), Some(format!("{stan:06}").as_str()));
    assert_eq!(answer.field(41), Some(s.tid.as_str()));
    assert_eq!(answer.field(42), Some(s.mid.as_str()));
    // Cut right after the bitmap: nothing to echo, still a 30.
    let bare = frame::PREFIX_BYTES + 2 + 8;
    let mut cut = full[..bare + 1].to_vec();
    let len = u16::try_from(cut.len() - 2).unwrap();
    cut[..2].copy_from_slice(&len.to_be_bytes());
    let answer = exchange(&mut t, &cut);
    assert_code(&host, &answer, "30");
    assert_eq!(answer.field(11), None);
    assert_eq!(answer.field(41), None);
    host.assert_balanced();
}

/// A terminal signed in with single-length keys (60.3 = 001) sends its PIN block under a
/// single-DES PIK and says so in field 53 (digit 2 = 0): the host's field check and PIN
/// check agree, for every layout.
#[test]
fn a_pin_sale_is_approved_under_every_key_layout() {
    let host = TestHost::start();
    let s = fleet(5);
    let mut t = host.terminal(&s.tid, &s.mid);
    for code in ["001", "003", "004"] {
        let mut spec = RequestSpec::new(K::SignIn);
        spec.network_code = Some(code.into());
        let answer = t.send(&spec).unwrap();
        assert_code(&host, &answer, "00");
        t.adopt_sign_in(&answer).unwrap();
        let sale = t.send(&sale(&s, 1_000)).unwrap();
        assert_code(&host, &sale, "00");
    }
}

/// A request of `mti` with fields 3, 25 and 60 as given, MAC'd with the terminal's key.
fn not_offered(t: &mut TestTerminal, s: &Scenario, mti: &[u8; 4], f3_25_60: [&[u8]; 3]) -> Vec<u8> {
    let stan = format!("{:06}", t.take_stan());
    let [f3, f25, f60] = f3_25_60;
    let fields: [(u8, &[u8]); 10] = [
        (2, s.pan.as_bytes()),
        (3, f3),
        (4, b"000000000100"),
        (11, stan.as_bytes()),
        (14, b"3012"),
        (22, b"012"),
        (25, f25),
        (41, s.tid.as_bytes()),
        (42, s.mid.as_bytes()),
        (49, b"156"),
    ];
    let mut builder = MessageBuilder::new(&CUP_POS, Mti(*mti));
    for (number, value) in fields.iter().chain(&[(60, f60), (64, &[0u8; 8][..])]) {
        builder.set(*number, value).expect("a valid value");
    }
    let mut out = Vec::new();
    let range = frame::encode_frame_into(&TPDU, &HEADER, &builder, &mut out);
    let key = t.mac_key().expect("signed in");
    poskit_host::response::remac(&mut out[range], poskit_security::MacAlgorithm::CupEcb, &key);
    out
}

#[test]
fn a_cup_transaction_the_host_does_not_offer_is_answered_40_not_30() {
    let host = TestHost::start();
    let s = fleet(3);
    let mut t = host.signed_in(&s);
    let tip = format!("34{:06}000", t.batch.value());
    let script = format!("00{:06}951", t.batch.value());
    for (mti, fields, name) in [
        (
            b"0100",
            [&b"030000"[..], b"60", b"10000001000"],
            "additional pre-authorization",
        ),
        (
            b"0220",
            [&b"000000"[..], b"00", tip.as_bytes()],
            "tip adjustment",
        ),
        (
            b"0620",
            [&b"000000"[..], b"00", script.as_bytes()],
            "chip script result advice",
        ),
    ] {
        let frame = not_offered(&mut t, &s, mti, fields);
        let answer = exchange(&mut t, &frame);
        assert_eq!(answer.code(), "40", "{name}: {:?}", answer.fields);
        assert!(answer.field(11).is_some(), "{name}: addressed by its trace");
        let reason = host.reason_of(&answer);
        assert!(
            reason.contains(&format!("function not supported: {name}")),
            "{name}: {reason}"
        );
    }
    // A row of no transaction at all is still a format error.
    let odd = format!("31{:06}000", t.batch.value());
    let frame = not_offered(&mut t, &s, b"0220", [b"000000", b"00", odd.as_bytes()]);
    assert_eq!(exchange(&mut t, &frame).code(), "30");
    // And the terminal's sales go on.
    let sale_answer = t.send(&sale(&s, 500)).unwrap();
    assert_code(&host, &sale_answer, "00");
    host.assert_balanced();
}
