//! Durability costs one fsync per group of requests, not one per request.

mod support;

use std::sync::atomic::Ordering;

use poskit_host::client::RequestSpec;
use support::*;

#[test]
fn concurrent_pipelined_sales_are_committed_in_groups() {
    let host = TestHost::start();
    let terminals: Vec<_> = (30..34u32)
        .map(|i| (fleet(i), host.signed_in(&fleet(i))))
        .collect();
    let before_groups = host.shared.groups_committed.load(Ordering::Relaxed);
    let before_requests = host.shared.requests_committed.load(Ordering::Relaxed);
    let threads: Vec<_> = terminals
        .into_iter()
        .map(|(s, mut t)| {
            std::thread::spawn(move || {
                let mut burst = Vec::new();
                for n in 0..32u64 {
                    let (frame, _) = t
                        .build(&RequestSpec::sale(manual(&s), 100 + n, Some(s.pin)))
                        .unwrap();
                    burst.extend_from_slice(&frame);
                }
                t.send_raw(&burst).unwrap();
                (0..32)
                    .map(|_| t.receive().unwrap().code().to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        let codes = t.join().unwrap();
        assert!(codes.iter().all(|c| c == "00"), "{codes:?}");
    }
    let groups = host.shared.groups_committed.load(Ordering::Relaxed) - before_groups;
    let requests = host.shared.requests_committed.load(Ordering::Relaxed) - before_requests;
    assert_eq!(requests, 128);
    assert!(
        groups * 2 <= requests,
        "{requests} requests took {groups} commits: group commit is not grouping"
    );
    eprintln!("{requests} sales committed in {groups} groups");
    host.assert_balanced();
}
