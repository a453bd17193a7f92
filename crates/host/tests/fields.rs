//! Issue 17: every field the host posts from is checked, each refusal stored with its
//! reason; and what did not prove itself (unknown terminal, bad MAC, undecodable) is
//! answered but never becomes a row.

mod support;

use poskit_codec::frame::{self, encode_frame_into};
use poskit_codec::{CUP_POS, MessageBuilder};
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_security::MacAlgorithm;
use support::*;

/// `frame` with fields changed (`None`: removed), MAC'd again with the terminal's key.
fn rewritten(t: &TestTerminal, frame: &[u8], changes: &[(u8, Option<&[u8]>)]) -> Vec<u8> {
    let decoded = frame::decode_frame(&CUP_POS, frame).unwrap();
    let values: Vec<(u8, Vec<u8>)> = decoded
        .message
        .fields()
        .map(|f| {
            let v = match (f.digits(), f.text(), f.bytes()) {
                (Some(d), _, _) => d.to_text().into_bytes(),
                (None, Some(t), _) => t.to_vec(),
                (None, None, Some(b)) => b.to_vec(),
                _ => unreachable!("a field has a value"),
            };
            (f.number(), v)
        })
        .collect();
    let mut b = MessageBuilder::new(&CUP_POS, decoded.message.mti());
    for (n, v) in &values {
        if !changes.iter().any(|(c, _)| c == n) {
            b.set(*n, v).unwrap();
        }
    }
    for (n, v) in changes {
        if let Some(v) = v {
            b.set(*n, v).unwrap();
        }
    }
    let mut out = Vec::new();
    let range = encode_frame_into(&decoded.tpdu, &decoded.header, &b, &mut out);
    poskit_host::response::remac(&mut out[range], MacAlgorithm::CupEcb, &t.mac_key().unwrap());
    out
}

fn send(
    t: &mut TestTerminal,
    frame: &[u8],
    changes: &[(u8, Option<&[u8]>)],
) -> poskit_host::client::Response {
    let frame = rewritten(t, frame, changes);
    t.send_raw(&frame).unwrap();
    t.receive().unwrap()
}

/// Name, request, fields changed, code expected, words of the reason.
type Case<'a> = (
    &'a str,
    RequestSpec,
    Vec<(u8, Option<&'a [u8]>)>,
    &'a str,
    &'a str,
);

#[test]
fn each_field_the_host_posts_from_is_checked_and_the_refusal_stored_with_its_reason() {
    let host = TestHost::start();
    let s = fleet(1);
    let mut t = host.signed_in(&s);
    let manual = CardData::Manual {
        pan: s.pan.clone(),
        expiry: s.expiry.clone(),
    };
    let cases: Vec<Case> = vec![
        (
            "USD",
            sale(&s, 10_000),
            vec![(49, Some(b"840"))],
            "13",
            "accepts 156",
        ),
        (
            "no currency",
            sale(&s, 100),
            vec![(49, None)],
            "30",
            "field 49",
        ),
        (
            "garbage currency",
            sale(&s, 100),
            vec![(49, Some(b"X1Z"))],
            "30",
            "field 49",
        ),
        (
            "swipe without track 2",
            RequestSpec::sale(manual.clone(), 100, Some(s.pin)),
            vec![(22, Some(b"021"))],
            "30",
            "track 2",
        ),
        (
            "manual without expiry",
            RequestSpec::sale(manual.clone(), 100, Some(s.pin)),
            vec![(14, None)],
            "30",
            "field 14",
        ),
        (
            "chip without 55",
            sale(&s, 100),
            vec![(22, Some(b"051"))],
            "30",
            "field 55",
        ),
        (
            "chip",
            sale(&s, 100),
            vec![(22, Some(b"051")), (55, Some(&[0x9F, 0x26, 0x01, 0x00]))],
            "40",
            "chip",
        ),
        (
            "two cards",
            RequestSpec::sale(manual.clone(), 100, Some(s.pin)),
            vec![(
                35,
                Some(
                    format!("{}=30121010000000000", fleet(2).pan)
                        .as_bytes()
                        .to_vec()
                        .leak(),
                ),
            )],
            "14",
            "track 2",
        ),
        (
            "STAN 0",
            sale(&s, 100),
            vec![(11, Some(b"000000"))],
            "30",
            "000000",
        ),
        (
            "field 25",
            sale(&s, 100),
            vec![(25, Some(b"77"))],
            "30",
            "25",
        ),
        (
            "field 26 too long",
            sale(&s, 100),
            vec![(26, Some(b"13"))],
            "30",
            "field 26",
        ),
        (
            "no field 53",
            sale(&s, 100),
            vec![(53, None)],
            "30",
            "field 53",
        ),
        (
            "field 53 algorithm",
            sale(&s, 100),
            vec![(53, Some(b"2000000000000000"))],
            "99",
            "sign in again",
        ),
        (
            "field 53 format 1",
            sale(&s, 100),
            vec![(53, Some(b"1600000000000000"))],
            "99",
            "format 2",
        ),
        (
            "field 53 unlisted",
            sale(&s, 100),
            vec![(53, Some(b"7600000000000000"))],
            "30",
            "field 53",
        ),
    ];
    let rows_before = host.rows();
    for (name, spec, changes, code, words) in &cases {
        let (frame, _) = t.build(spec).unwrap();
        let r = send(&mut t, &frame, changes);
        assert_eq!(r.code(), *code, "{name}: {:?}", r.fields);
        let reason = host.reason_of(&r);
        assert!(reason.contains(words), "{name}: {reason}");
    }
    assert_eq!(
        host.rows() - rows_before,
        cases.len() as i64,
        "every refusal is a row: the terminal proved itself"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN, "nothing posted");
    // The control: the same sale, unchanged, is approved.
    let (frame, _) = t.build(&sale(&s, 100)).unwrap();
    assert_eq!(send(&mut t, &frame, &[]).code(), "00");
    host.assert_balanced();
}

#[test]
fn a_merchant_that_accepts_dollars_is_posted_in_dollars_only_when_it_says_so() {
    let host = TestHost::start();
    let s = fleet(3);
    let mut t = host.signed_in(&s);
    let (frame, _) = t.build(&sale(&s, 100)).unwrap();
    assert_eq!(send(&mut t, &frame, &[(49, Some(b"840"))]).code(), "13");
    host.db()
        .execute(
            "UPDATE merchants SET currencies = '156,840' WHERE mid = ?1",
            [&s.mid],
        )
        .unwrap();
    let host = host.restart(Default::default());
    let mut t = host.signed_in(&s);
    let (frame, _) = t.build(&sale(&s, 100)).unwrap();
    let dollars = send(&mut t, &frame, &[(49, Some(b"840"))]);
    assert_eq!(dollars.code(), "00");
    assert_eq!(
        dollars.field(49),
        Some("840"),
        "the answer is in the sale's currency"
    );
    let (frame, _) = t.build(&sale(&s, 100)).unwrap();
    t.send_raw(&frame).unwrap();
    let yuan = t.receive().unwrap();
    assert_eq!(
        yuan.field(49),
        Some("156"),
        "a yuan sale is answered in yuan"
    );
}

#[test]
fn strangers_are_answered_and_leave_no_row() {
    let host = TestHost::start();
    let s = fleet(4);
    let rows = host.rows();
    // Unknown terminal.
    let mut stranger = host.terminal("99999999", &s.mid);
    let r = stranger.sign_in().unwrap();
    assert_eq!(r.code(), "97");
    assert!(r.field(37).is_none(), "no row, no reference number");
    assert!(host.reason_of(&r).contains("not registered"));
    // Registered terminal, no sign-in: A0.
    let mut t = host.terminal(&s.tid, &s.mid);
    let r = t.send(&RequestSpec::sale(track2(&s), 100, None)).unwrap();
    assert_eq!(r.code(), "A0");
    // Junk.
    t.send_raw(&[0, 11, 0x60, 0, 3, 0, 0, 0x60, 0x31, 0, 0x31, 0, 0])
        .unwrap();
    let _ = t.receive();
    assert_eq!(host.rows(), rows, "strangers cost no row");
    use poskit_host::stranger::Stranger;
    assert!(host.shared.strangers.of(Stranger::UnknownTerminal) >= 1);
    assert!(host.shared.strangers.of(Stranger::BadMac) >= 1);
    assert!(host.shared.strangers.of(Stranger::Undecodable) >= 1);
    assert!(
        host.shared
            .strangers
            .of_peer("127.0.0.1".parse().unwrap())
            .unwrap()
            >= 3
    );
}
