//! The host's power cut under load, on the crash VFS (what was not synced is lost), on top
//! of the harsh faults and the storage faults: every approval a terminal heard of is still
//! in the ledger after each cut, nothing is posted twice, and the fleet settles.

use poskit_sim::{Knobs, PowerCut, World};

fn crashable_disk() -> PowerCut {
    poskit_crashvfs::install_as_default();
    PowerCut {
        crash: poskit_crashvfs::crash,
        cut: poskit_crashvfs::power_cut,
    }
}

#[test]
fn approvals_terminals_heard_survive_power_cuts_of_the_host() {
    let knobs = Knobs {
        power_cut: 0.01,
        ..Knobs::harsh()
    };
    let mut cuts = 0;
    for seed in [21u64, 22, 23] {
        let world = World::with_power_cut(8, 3_000, seed, knobs.clone(), Some(crashable_disk()));
        let report = world.unwrap().run();
        eprintln!("{}", report.json());
        let shown: Vec<_> = report.violations.iter().take(10).collect();
        assert!(
            report.ok(),
            "seed {seed}: {} violations, first: {shown:#?}",
            report.violations.len()
        );
        assert_eq!(report.recovery_settled, 8, "every terminal settled");
        cuts += report.faults.get("power_cut").copied().unwrap_or(0);
    }
    assert!(cuts > 10, "only {cuts} power cuts");
}

#[test]
fn a_power_cut_needs_a_disk_that_can_lose_power() {
    let knobs = Knobs {
        power_cut: 0.01,
        ..Knobs::none()
    };
    let refused = World::new(2, 10, 1, knobs).err().unwrap();
    assert!(refused.contains("crash VFS"), "{refused}");
}
