//! Which answers the terminal takes as the answer to the request in flight: the terminal
//! engine against the real host engine (in process, no sockets), with the host's answers
//! re-encoded without some of their fields and a valid MAC under the terminal's MAK, so
//! that only the missing field is wrong.
//!
//! An approval must carry the amount (field 4) and the processing code (field 3) when the
//! request did: one that leaves them out is no answer (the timer runs on and the sale is
//! reversed with reason 98). A decline may leave them out.

mod support;

use support::*;

use poskit_codec::{CUP_POS, MessageBuilder, Value, frame};
use poskit_domain::message::{CardData, Response, parse_response};
use poskit_domain::{AmountFen, TransactionKind};
use poskit_host::demo;
use poskit_security::{MAC_BYTES, MacAlgorithm, Pin, SecretKey, compute_mac};
use poskit_terminal::engine::{
    BATCH_TXNS_MAX, Command, Effect, Event, Outcome, ReversalState, Terminal, TxnState,
};
use poskit_terminal::note::Note;

const AMOUNT_FEN: u64 = 1234;

/// What one event made the terminal do (its journal writes already applied).
#[derive(Debug, Default)]
struct Did {
    /// Frames sent, with their tokens.
    sent: Vec<(Vec<u8>, u64)>,
    /// Timers set.
    timers: Vec<u64>,
    done: Option<Outcome>,
    journal_writes: usize,
}

fn feed(w: &mut World, t: &mut Terminal, event: Event) -> Did {
    w.now_ms += 10;
    let mut did = Did::default();
    for effect in t.handle(w.now_ms, event) {
        match effect {
            Effect::Journal(ops) => {
                w.journal.apply(&ops, w.now_ms).unwrap();
                did.journal_writes += 1;
            }
            Effect::Send { frame, token } => did.sent.push((frame, token)),
            Effect::Timer { token, .. } => did.timers.push(token),
            Effect::Done(o) => {
                assert!(did.done.is_none(), "two outcomes for one event");
                did.done = Some(*o);
            }
        }
    }
    did
}

/// The one frame `did` sent, and its timer.
fn sent_one(did: &Did) -> (Vec<u8>, u64) {
    assert_eq!(did.sent.len(), 1, "one request expected: {did:?}");
    let (frame, token) = did.sent[0].clone();
    assert_eq!(did.timers, vec![token], "the request has its timer");
    (frame, token)
}

/// A terminal of the world, signed in against the host.
fn signed_in(w: &mut World) -> Terminal {
    let (cfg, _) = w.journal.config().unwrap();
    let mut t = Terminal::new(cfg, w.journal.snapshot().unwrap());
    let did = feed(w, &mut t, Event::Command(Command::SignIn));
    let (frame, _) = sent_one(&did);
    let answer = host_answer(w, &frame).expect("the host answers");
    let did = feed(w, &mut t, Event::Response(answer));
    let outcome = did.done.expect("the sign-in is over");
    assert!(outcome.approved, "{outcome:?}");
    assert!(t.snapshot().keys.is_some());
    t
}

fn mak(t: &Terminal) -> SecretKey {
    t.snapshot().keys.as_ref().expect("signed in").mac_key()
}

/// Reads an answer as the terminal does (MAC checked with `mak`).
fn read(frame: &[u8], mak: &SecretKey) -> Response {
    parse_response(frame.to_vec(), Some(mak), MacAlgorithm::CupEcb).unwrap()
}

/// `answer` re-encoded without `drop` (same TPDU, header, MTI and other fields). When it
/// carried a MAC, field 64 is computed again under `mak`, so the MAC verifies.
fn without(answer: &[u8], drop: &[u8], mak: &SecretKey) -> Vec<u8> {
    let decoded = frame::decode_frame(&CUP_POS, answer).unwrap();
    let m = &decoded.message;
    let had_mac = m.field(64).is_some();
    let values: Vec<(u8, Vec<u8>)> = m
        .fields()
        .filter(|f| f.number() != 64 && !drop.contains(&f.number()))
        .map(|f| {
            let value = match f.value() {
                Value::Digits(d) => d.to_string().into_bytes(),
                Value::Text(t) => t.to_vec(),
                Value::Bytes(b) => b.to_vec(),
                Value::Hex(_) => {
                    let mut out = Vec::new();
                    f.write_bytes(&mut out);
                    out
                }
            };
            (f.number(), value)
        })
        .collect();
    let mut builder = MessageBuilder::new(&CUP_POS, m.mti());
    for (n, v) in &values {
        builder.set(*n, v).unwrap();
    }
    let placeholder = [b'0'; MAC_BYTES];
    if had_mac {
        builder.set(64, &placeholder).unwrap();
    }
    let mut out = Vec::new();
    let range = frame::encode_frame_into(&decoded.tpdu, &decoded.header, &builder, &mut out);
    if had_mac {
        let message = &mut out[range];
        let split = message.len() - MAC_BYTES;
        let mac = compute_mac(MacAlgorithm::CupEcb, mak, &message[..split]).unwrap();
        message[split..].copy_from_slice(mac.as_bytes());
    }
    // Only the fields left out differ: everything else reads the same, MAC included.
    let before = read(answer, mak);
    let after = read(&out, mak);
    assert_eq!(after.mti, before.mti);
    assert_eq!(after.header, before.header);
    assert_eq!(after.mac_ok, before.mac_ok, "the MAC verifies as before");
    let mut expected = before.fields.clone();
    expected.retain(|n, _| !drop.contains(n) && *n != 64);
    let mut got = after.fields.clone();
    got.remove(&64);
    assert_eq!(got, expected);
    out
}

fn card(pan: &str) -> CardData {
    CardData::Track2(format!("{pan}=30121010000000000"))
}

fn sale(pan: &str, pin: &str) -> Command {
    Command::Sale {
        card: card(pan),
        amount_fen: AmountFen::new(AMOUNT_FEN).unwrap(),
        pin: Some(Pin::new(pin).unwrap()),
    }
}

/// A sale the host has approved (and debited), its approval not yet given to the terminal.
struct Sent {
    w: World,
    t: Terminal,
    pan: String,
    opening: i64,
    sale: Vec<u8>,
    token: u64,
    /// The host's approval as it sent it.
    approval: Vec<u8>,
}

/// Signs in, sends a sale of [`AMOUNT_FEN`] with the right PIN and takes the host's
/// approval, checking that it carries fields 3 and 4 and a valid MAC.
fn approved_sale() -> Sent {
    let mut w = world(3);
    let mut t = signed_in(&mut w);
    let pan = demo::fleet_pan(0);
    let opening = balance(&w, &pan);
    let did = feed(&mut w, &mut t, Event::Command(sale(&pan, demo::DEMO_PIN)));
    let (sale, token) = sent_one(&did);
    assert!(
        w.journal.snapshot().unwrap().reversal.is_some(),
        "the reversal record is durable before the sale leaves"
    );
    let approval = host_answer(&mut w, &sale).expect("the host answers");
    let r = read(&approval, &mak(&t));
    assert_eq!(r.mti, "0210");
    assert_eq!(r.code(), "00", "the host approves the sale");
    assert_eq!(
        r.mac_ok,
        Some(true),
        "the host's approval carries a valid MAC"
    );
    assert_eq!(r.field(3), Some("000000"));
    assert_eq!(r.field(4), Some(format!("{AMOUNT_FEN:012}").as_str()));
    assert_eq!(
        balance(&w, &pan),
        opening - AMOUNT_FEN as i64,
        "the host has debited the card"
    );
    Sent {
        w,
        t,
        pan,
        opening,
        sale,
        token,
        approval,
    }
}

/// `answer` re-encoded with field `n`'s bytes replaced by `bytes` (as long as the field's
/// fixed length; the builder would refuse them, so they are written into the frame), and
/// field 64 computed again under `mak`, so the MAC verifies.
fn with_bytes(answer: &[u8], n: u8, bytes: &[u8], mak: &SecretKey) -> Vec<u8> {
    let placeholder = vec![b'Q'; bytes.len()];
    let decoded = frame::decode_frame(&CUP_POS, answer).unwrap();
    let m = &decoded.message;
    assert!(m.fields().all(|f| !f.to_text().contains('Q')), "Q is free");
    let mut builder = MessageBuilder::new(&CUP_POS, m.mti());
    let values: Vec<(u8, Vec<u8>)> = m
        .fields()
        .filter(|f| f.number() != 64)
        .map(|f| match (f.number() == n, f.value()) {
            (true, _) => (n, placeholder.clone()),
            (false, Value::Digits(d)) => (f.number(), d.to_string().into_bytes()),
            (false, Value::Text(t)) => (f.number(), t.to_vec()),
            (false, Value::Bytes(b)) => (f.number(), b.to_vec()),
            (false, Value::Hex(_)) => {
                let mut out = Vec::new();
                f.write_bytes(&mut out);
                (f.number(), out)
            }
        })
        .collect();
    assert!(
        values.iter().any(|(f, _)| *f == n),
        "the answer has field {n}"
    );
    for (f, v) in &values {
        builder.set(*f, v).unwrap();
    }
    builder.set(64, &[b'0'; MAC_BYTES]).unwrap();
    let mut out = Vec::new();
    let range = frame::encode_frame_into(&decoded.tpdu, &decoded.header, &builder, &mut out);
    let message = &mut out[range];
    let at = message
        .windows(bytes.len())
        .position(|w| w == placeholder.as_slice())
        .expect("the placeholder is in the frame");
    message[at..at + bytes.len()].copy_from_slice(bytes);
    let split = message.len() - MAC_BYTES;
    let mac = compute_mac(MacAlgorithm::CupEcb, mak, &message[..split]).unwrap();
    message[split..].copy_from_slice(mac.as_bytes());
    let r = read(&out, mak);
    assert_eq!(r.mac_ok, Some(true), "the MAC verifies");
    assert_eq!(r.code(), "00", "still an approval");
    out
}

/// An approval without `drop` is no answer: nothing happens until the timer, then the sale
/// fails (L03) and is reversed with reason 98, which the host honours.
fn an_approval_without_is_not_taken(drop: &[u8]) {
    let sent = approved_sale();
    let stripped = without(&sent.approval, drop, &mak(&sent.t));
    let ignored = |n: &Note| matches!(n, Note::AnswerIgnored { .. });
    the_sale_is_reversed_after(
        sent,
        stripped,
        &format!("without field(s) {drop:?}"),
        ignored,
    );
}

/// `answer`, a changed approval of the sale `sent`, is no answer: nothing happens until
/// the timer, then the sale fails (L03), with a note `noted` says is the right one, and is
/// reversed with reason 98, which the host honours.
fn the_sale_is_reversed_after(sent: Sent, answer: Vec<u8>, what: &str, noted: fn(&Note) -> bool) {
    let Sent {
        mut w,
        mut t,
        pan,
        opening,
        sale,
        token,
        ..
    } = sent;
    let did = feed(&mut w, &mut t, Event::Response(answer));
    assert!(
        did.done.is_none(),
        "an approval {what} must not end the sale: {:?}",
        did.done
    );
    assert!(did.sent.is_empty() && did.timers.is_empty() && did.journal_writes == 0);
    assert!(t.is_busy(), "the sale is still waiting for its answer");
    let txn = w.journal.txns(None).unwrap().pop().unwrap();
    assert_eq!(txn.kind, TransactionKind::Sale);
    assert_eq!(txn.state, TxnState::Sent, "the journal has no approval");
    assert_eq!(txn.reversal, ReversalState::Pending);

    // The timer of the sale fires: the sale is reversed with reason 98 (no answer).
    let did = feed(&mut w, &mut t, Event::Timeout { token });
    assert!(did.done.is_none(), "the reversal goes out first: {did:?}");
    let (reversal, _) = sent_one(&did);
    let rev = read(&reversal, &mak(&t));
    let request = read(&sale, &mak(&t));
    assert_eq!(rev.mti, "0400");
    assert_eq!(rev.field(39), Some("98"), "reason 98: no answer");
    assert_eq!(rev.field(11), request.field(11), "the sale's trace");
    assert_eq!(rev.field(4), request.field(4), "the sale's amount");
    let pending = w.journal.snapshot().unwrap().reversal.expect("pending");
    assert_eq!(pending.reason.as_str(), "98");

    let answer = host_answer(&mut w, &reversal).expect("the host answers");
    let r = read(&answer, &mak(&t));
    assert_eq!((r.mti.as_str(), r.code()), ("0410", "00"), "{r:?}");
    let did = feed(&mut w, &mut t, Event::Response(answer));
    let outcome = did.done.expect("the sale is over");
    assert!(!outcome.approved, "{outcome:?}");
    assert_eq!(outcome.code, "L03", "{outcome:?}");
    assert!(
        outcome.notes.iter().any(noted),
        "the ignored answer is named, not only 'no answer': {:?}",
        outcome.notes
    );
    assert_eq!(outcome.reversal, ReversalState::Done, "{outcome:?}");
    let txn = outcome.txn.expect("the sale");
    assert_eq!(txn.state, TxnState::Failed);
    assert_eq!(txn.reversal, ReversalState::Done);
    assert!(!t.is_busy());

    assert_eq!(balance(&w, &pan), opening, "the customer is not charged");
    assert!(w.journal.snapshot().unwrap().reversal.is_none());
    let journaled = w.journal.txns(None).unwrap().pop().unwrap();
    assert_eq!(journaled.state, TxnState::Failed);
    assert_eq!(journaled.reversal, ReversalState::Done);
}

#[test]
fn an_approval_without_field_4_is_not_taken_and_the_sale_is_reversed_after_the_timeout() {
    an_approval_without_is_not_taken(&[4]);
}

#[test]
fn an_approval_without_field_3_is_not_taken_and_the_sale_is_reversed_after_the_timeout() {
    an_approval_without_is_not_taken(&[3]);
}

#[test]
fn an_approval_without_fields_3_and_4_is_not_taken_and_the_sale_is_reversed_after_the_timeout() {
    an_approval_without_is_not_taken(&[3, 4]);
}

#[test]
fn an_approval_whose_field_37_is_not_a_retrieval_reference_number_is_not_taken() {
    let sent = approved_sale();
    // Twelve bytes on the wire, but a control character is not part of an RRN.
    let bad = with_bytes(&sent.approval, 37, b"00000000001\x07", &mak(&sent.t));
    let malformed = |n: &Note| matches!(n, Note::AnswerMalformed { field: 37, .. });
    the_sale_is_reversed_after(sent, bad, "with a bad field 37", malformed);
}

#[test]
fn an_approval_whose_field_38_is_not_six_characters_is_not_taken() {
    let sent = approved_sale();
    // Six bytes on the wire, but the last two are not text: read as five characters (the
    // last one U+FFFD), seven bytes, which no authorization code is.
    let bad = with_bytes(&sent.approval, 38, b"1234\xe5\x90", &mak(&sent.t));
    assert_eq!(
        read(&bad, &mak(&sent.t))
            .field(38)
            .map(|f| f.chars().count()),
        Some(5)
    );
    let malformed = |n: &Note| matches!(n, Note::AnswerMalformed { field: 38, .. });
    the_sale_is_reversed_after(sent, bad, "with a bad field 38", malformed);
}

/// The control of the two tests above: the same rewriting with a good RRN and a good
/// authorization code gives an approval the terminal takes and journals them as sent.
#[test]
fn an_approval_rewritten_with_a_good_rrn_and_auth_code_is_taken() {
    let Sent {
        mut w,
        mut t,
        pan,
        opening,
        approval,
        ..
    } = approved_sale();
    let rrn = with_bytes(&approval, 37, b"RRN000000042", &mak(&t));
    let good = with_bytes(&rrn, 38, b"AUTH42", &mak(&t));
    let did = feed(&mut w, &mut t, Event::Response(good));
    let outcome = did.done.expect("the sale is over");
    assert!(outcome.approved, "{outcome:?}");
    let txn = outcome.txn.expect("the sale");
    assert_eq!(
        txn.rrn.map(|r| r.to_string()).as_deref(),
        Some("RRN000000042")
    );
    assert_eq!(
        txn.auth_code.map(|a| a.to_string()).as_deref(),
        Some("AUTH42")
    );
    let journaled = w.journal.txns(None).unwrap().pop().unwrap();
    assert_eq!(
        (journaled.rrn, journaled.auth_code),
        (txn.rrn, txn.auth_code)
    );
    assert_eq!(balance(&w, &pan), opening - AMOUNT_FEN as i64);
}

/// The control of the tests above: the same re-encoding, leaving nothing out, gives an
/// approval the terminal takes (so they fail only for the missing field, not the MAC).
#[test]
fn an_approval_re_encoded_with_all_its_fields_is_taken() {
    let Sent {
        mut w,
        mut t,
        pan,
        opening,
        approval,
        ..
    } = approved_sale();
    let same = without(&approval, &[], &mak(&t));
    let did = feed(&mut w, &mut t, Event::Response(same));
    let outcome = did.done.expect("the sale is over");
    assert!(outcome.approved, "{outcome:?}");
    assert_eq!(outcome.code, "00");
    assert_eq!(outcome.reversal, ReversalState::None);
    assert!(did.sent.is_empty(), "nothing reversed");
    assert!(w.journal.snapshot().unwrap().reversal.is_none());
    assert_eq!(balance(&w, &pan), opening - AMOUNT_FEN as i64);
}

/// An answer not taken leaves the request in flight as it was: the real approval, arriving
/// after it and before the timer, is taken.
#[test]
fn the_full_approval_after_one_without_field_4_is_still_taken() {
    let Sent {
        mut w,
        mut t,
        pan,
        opening,
        approval,
        ..
    } = approved_sale();
    let stripped = without(&approval, &[4], &mak(&t));
    let did = feed(&mut w, &mut t, Event::Response(stripped));
    assert!(did.done.is_none(), "{:?}", did.done);
    let did = feed(&mut w, &mut t, Event::Response(approval));
    let outcome = did.done.expect("the sale is over");
    assert!(outcome.approved, "{outcome:?}");
    assert_eq!(outcome.reversal, ReversalState::None);
    assert!(w.journal.snapshot().unwrap().reversal.is_none());
    assert_eq!(balance(&w, &pan), opening - AMOUNT_FEN as i64);
}

#[test]
fn a_decline_without_fields_3_and_4_is_still_taken() {
    let mut w = world(3);
    let mut t = signed_in(&mut w);
    let pan = demo::fleet_pan(0);
    let opening = balance(&w, &pan);
    let wrong_pin = "654321";
    assert_ne!(wrong_pin, demo::DEMO_PIN);
    let did = feed(&mut w, &mut t, Event::Command(sale(&pan, wrong_pin)));
    let (sale, _) = sent_one(&did);
    let decline = host_answer(&mut w, &sale).expect("the host answers");
    let r = read(&decline, &mak(&t));
    assert_eq!(r.code(), "55", "a wrong PIN is declined 55: {r:?}");
    assert!(
        r.field(3).is_some() && r.field(4).is_some(),
        "the host's decline carries fields 3 and 4, so leaving them out means something"
    );
    let stripped = without(&decline, &[3, 4], &mak(&t));

    let did = feed(&mut w, &mut t, Event::Response(stripped));
    let outcome = did
        .done
        .expect("a decline without fields 3 and 4 answers the sale");
    assert!(!outcome.approved, "{outcome:?}");
    assert_eq!(outcome.code, "55", "{outcome:?}");
    assert_eq!(outcome.reversal, ReversalState::None, "55: no money moved");
    assert!(did.sent.is_empty(), "nothing to reverse: {:?}", did.sent);
    let txn = outcome.txn.expect("the sale");
    assert_eq!(txn.state, TxnState::Declined);
    assert!(txn.code.is_some_and(|c| c == "55"), "{txn:?}");
    assert!(!t.is_busy());
    assert!(w.journal.snapshot().unwrap().reversal.is_none());
    let journaled = w.journal.txns(None).unwrap().pop().unwrap();
    assert_eq!(journaled.state, TxnState::Declined);
    assert_eq!(journaled.reversal, ReversalState::None);
    assert_eq!(balance(&w, &pan), opening, "a decline charges nothing");
}

/// Runs `command` through the host until its outcome (every request answered).
fn complete(w: &mut World, t: &mut Terminal, command: Command) -> Outcome {
    let mut did = feed(w, t, Event::Command(command));
    loop {
        if let Some(done) = did.done.take() {
            return done;
        }
        let (frame, _) = sent_one(&did);
        let answer = host_answer(w, &frame).expect("the host answers");
        did = feed(w, t, Event::Response(answer));
    }
}

#[test]
fn a_batch_of_999_transactions_takes_no_more_until_it_is_settled() {
    let mut w = world(3);
    let mut t = signed_in(&mut w);
    let pan = demo::fleet_pan(0);
    // One fen each: the card's funds outlast a full batch.
    let small_sale = |pan: &str| Command::Sale {
        card: card(pan),
        amount_fen: AmountFen::new(1).unwrap(),
        pin: Some(Pin::new(demo::DEMO_PIN).unwrap()),
    };
    for n in 0..BATCH_TXNS_MAX {
        let done = complete(&mut w, &mut t, small_sale(&pan));
        assert!(done.approved, "sale {n}: {done:?}");
    }
    let full = feed(&mut w, &mut t, Event::Command(small_sale(&pan)));
    let full = full.done.expect("refused at once");
    assert_eq!(full.code, "L09", "{full:?}");
    assert!(!full.approved);
    // A balance inquiry is not counted in the settlement and still goes through.
    let inquiry = complete(
        &mut w,
        &mut t,
        Command::Balance {
            card: card(&pan),
            pin: Some(Pin::new(demo::DEMO_PIN).unwrap()),
        },
    );
    assert!(inquiry.approved, "{inquiry:?}");
    // A terminal rebuilt from its journal counts the same.
    let (cfg, _) = w.journal.config().unwrap();
    let mut t = Terminal::new(cfg, w.journal.snapshot().unwrap());
    let again = feed(&mut w, &mut t, Event::Command(small_sale(&pan)));
    assert_eq!(again.done.expect("refused at once").code, "L09");

    let settle = w.journal.settle_command().unwrap();
    let settled = complete(&mut w, &mut t, settle);
    assert!(settled.approved, "{settled:?}");
    let next = complete(&mut w, &mut t, small_sale(&pan));
    assert!(next.approved, "the new batch takes sales: {next:?}");
}
