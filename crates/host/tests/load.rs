//! The load generator's shortcuts stay honest: a request template under new traces is a
//! new, correctly MAC'd sale each time, and the answer summary sees a MAC that fails.

mod support;

use support::*;

#[test]
fn template_requests_are_each_a_sale_of_their_own_with_a_mac_the_host_verifies() {
    let host = TestHost::start();
    let s = fleet(54);
    let mut t = host.signed_in(&s);
    let mut template = t.template(&sale(&s, 250)).unwrap();
    let mut stans = Vec::new();
    for _ in 0..5 {
        let stan = t.take_stan();
        stans.push(stan);
        let frame = template.frame(stan).to_vec();
        t.send_raw(&frame).unwrap();
        let answer = t.receive_summary().unwrap();
        assert_eq!(&answer.code, b"00");
        assert_eq!(answer.stan, Some(stan));
        assert!(answer.approved(), "{answer:?}");
    }
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 5 * 250);
    assert_eq!(
        host.query_i64(
            "SELECT count(DISTINCT stan) FROM transactions WHERE tid = ?1 AND kind = 'sale' AND code = '00'",
            [&s.tid],
        ),
        5
    );

    // A frame whose MAC no longer matches its trace is refused, and a corrupted answer MAC
    // is not counted as approved.
    let mut bad = template.frame(t.take_stan()).to_vec();
    let at = bad.len() - 20;
    bad[at] ^= 0x10;
    t.send_raw(&bad).unwrap();
    let refused = t.receive_summary().unwrap();
    assert_ne!(&refused.code, b"00");
    assert!(!refused.approved());
    host.assert_balanced();
}

#[test]
fn an_approval_whose_mac_does_not_verify_is_not_counted_as_approved() {
    let host = TestHost::start_with_faults(
        &format!(
            "[[rules]]\nname = \"corrupt\"\naction = \"corrupt-mac\"\nkind = \"sale\"\ntid = \"{}\"\n",
            fleet(55).tid
        ),
        Default::default(),
    );
    let s = fleet(55);
    let mut t = host.signed_in(&s);
    let mut template = t.template(&sale(&s, 100)).unwrap();
    let frame = template.frame(t.take_stan()).to_vec();
    t.send_raw(&frame).unwrap();
    let answer = t.receive_summary().unwrap();
    assert_eq!(&answer.code, b"00");
    assert_eq!(answer.mac_ok, Some(false));
    assert!(!answer.approved());
}
