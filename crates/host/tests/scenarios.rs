//! Every demo scenario over loopback gives its code, and the code carries its reason.

mod support;

use poskit_domain::TransactionKind;
use poskit_host::client::RequestSpec;
use poskit_host::demo;
use support::*;

#[test]
fn every_demo_scenario_gives_its_code_with_a_reason() {
    let host = TestHost::start();
    // One terminal per TID, as in a shop: its trace numbers go on from scenario to scenario.
    let mut terminals = std::collections::HashMap::new();
    for s in demo::scenarios() {
        let t = terminals
            .entry(s.tid.clone())
            .or_insert_with(|| host.terminal(&s.tid, &s.mid));
        let signed = t.sign_in().unwrap();
        if s.name == "unregistered_terminal"
            || s.name == "inactive_merchant"
            || s.name == "blacklisted_merchant"
        {
            assert_eq!(signed.code(), s.expected.as_str(), "{}: sign-in", s.name);
            assert!(!host.reason_of(&signed).is_empty());
            continue;
        }
        assert_eq!(signed.code(), "00", "{}", s.name);
        let response = match s.operation {
            TransactionKind::Refund => {
                let mut spec = RequestSpec::new(TransactionKind::Refund);
                spec.amount_fen = Some(s.amount_fen);
                spec.card = Some(manual(&s));
                spec.rrn = Some("000000000001".into());
                spec.original_date = Some("0101".into());
                t.send(&spec).unwrap()
            }
            _ => t.send(&sale(&s, s.amount_fen)).unwrap(),
        };
        assert_eq!(
            response.code(),
            s.expected.as_str(),
            "{}: {}",
            s.name,
            host.reason_of(&response)
        );
        assert!(!host.reason_of(&response).is_empty(), "{}", s.name);
        if response.code() == "00" {
            assert_eq!(
                response.mac_ok,
                Some(true),
                "{}: approved responses carry a MAC",
                s.name
            );
            assert!(response.field(38).is_some());
        }
    }
    host.assert_balanced();
}
