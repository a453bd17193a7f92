//! The host's request path (frame → precheck → group writer and engine → sealed answer)
//! under hostile input, through the driver the fuzz target uses
//! (`poskit_host::fuzzing`, `fuzz/fuzz_targets/request.rs`): random bytes on the wire, and
//! valid requests of signed-in terminals mutated — bytes flipped, cut, added, fields
//! replaced or removed with the MAC computed again or not, sent twice, resent. The driver
//! asserts after every group that each frame that decodes is answered, that money moves
//! only for requests whose MAC verifies, and that the ledger is balanced.

use std::cell::RefCell;

use proptest::prelude::*;

use poskit_domain::TransactionKind as K;
use poskit_host::fuzzing::{
    Entry, FLEET_CARDS, FLEET_TERMINALS, Mutation, PinChoice, Request, RequestPath, Step,
    kind_index,
};

/// A host of its own per test thread, on tmpfs where there is one (the fsync of each
/// group is not what is tested), with every terminal signed in.
struct Bench {
    _dir: tempfile::TempDir,
    path: RequestPath,
}

fn bench() -> Bench {
    let shm = std::path::Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("poskit-request-path-");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .unwrap();
    let mut path = RequestPath::open(dir.path()).unwrap();
    path.sign_in_all();
    Bench { _dir: dir, path }
}

thread_local! {
    static BENCH: RefCell<Option<Bench>> = const { RefCell::new(None) };
}

fn with_bench(f: impl FnOnce(&mut RequestPath)) {
    BENCH.with(|cell| {
        let mut cell = cell.borrow_mut();
        f(&mut cell.get_or_insert_with(bench).path);
    });
}

/// Fields worth replacing: the ones the engine reads.
const FIELDS: [u8; 28] = [
    2, 3, 4, 11, 12, 13, 14, 22, 23, 25, 26, 35, 36, 37, 38, 39, 41, 42, 44, 48, 49, 52, 53, 55,
    60, 61, 62, 63,
];

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{0,24}".prop_map(String::into_bytes),
        "[0-9A-Za-z= ]{0,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        2 => (any::<u16>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => any::<u16>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Mutation::Extend),
        4 => (proptest::sample::select(&FIELDS[..]), value(), any::<bool>())
            .prop_map(|(field, value, remac)| Mutation::Replace { field, value, remac }),
        2 => (proptest::sample::select(&FIELDS[..]), any::<bool>())
            .prop_map(|(field, remac)| Mutation::Remove { field, remac }),
        1 => Just(Mutation::Twice),
        1 => Just(Mutation::Resend),
    ]
}

fn kind() -> impl Strategy<Value = u8> {
    let money = [
        K::Sale,
        K::Void,
        K::Refund,
        K::PreAuth,
        K::PreAuthCompletion,
        K::PreAuthCancel,
    ];
    prop_oneof![
        3 => proptest::sample::select(money.map(kind_index).to_vec()),
        1 => any::<u8>(),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let fleet_cards = 0..FLEET_CARDS as u8;
    (
        kind(),
        prop_oneof![3 => fleet_cards, 1 => any::<u8>()],
        1..200_000u32,
        prop_oneof![4 => Just(Entry::Track2), 2 => Just(Entry::Manual), 1 => Just(Entry::NoCard)],
        prop_oneof![4 => Just(PinChoice::Right), 1 => Just(PinChoice::Wrong), 1 => Just(PinChoice::NoPin)],
        any::<bool>(),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(kind, card, amount_fen, entry, pin, of_last, reverse_last)| Request {
            kind,
            card,
            amount_fen,
            entry,
            pin,
            of_last,
            reverse_last,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (
            prop_oneof![3 => 0..FLEET_TERMINALS as u8, 1 => any::<u8>()],
            request(),
            mutation(),
        )
            .prop_map(|(terminal, request, mutation)| {
            Step::Request { terminal, request, mutation }
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(Step::Wire),
        // A length prefix that fits the bytes, so that they reach the decoder.
        1 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(|body| {
            let mut bytes = (body.len() as u16).to_be_bytes().to_vec();
            bytes.extend(body);
            Step::Wire(bytes)
        }),
    ]
}

proptest! {
    // About 15 s in a debug build (the ledger grows from case to case, and is checked
    // after every step).
    #![proptest_config(ProptestConfig { cases: 1200, ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests_are_answered_and_move_no_money_without_a_mac(
        steps in proptest::collection::vec(step(), 1..10),
    ) {
        with_bench(|path| {
            for step in &steps {
                path.step(step);
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_fuzzers_bytes_read_as_steps_keep_the_same_invariants(
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        with_bench(|path| {
            for step in poskit_host::fuzzing::steps(&data) {
                path.step(&step);
            }
        });
    }
}

fn sale(card: u8, amount_fen: u32) -> Request {
    Request {
        kind: kind_index(K::Sale),
        card,
        amount_fen,
        entry: Entry::Track2,
        pin: PinChoice::Right,
        of_last: false,
        reverse_last: false,
    }
}

/// The driver's checks are live: a valid sale moves money, the same sale with field 4
/// changed moves none unless its MAC is computed again, and then it does.
#[test]
fn the_driver_sees_money_move_only_for_a_valid_mac() {
    let mut b = bench();
    let p = &mut b.path;
    let terminal = p.terminal_of(&poskit_host::demo::fleet_tid(0)).unwrap();
    let card = p.card_of(&poskit_host::demo::fleet_pan(0)).unwrap();
    let step = |p: &mut RequestPath, mutation: Mutation| {
        let before = p.seen.moved_money;
        p.step(&Step::Request {
            terminal,
            request: sale(card, 1_00),
            mutation,
        });
        p.seen.moved_money - before
    };
    let fleet_card = step(p, Mutation::None);
    assert_eq!(fleet_card, 1, "{:?}", p.seen);
    let amount = b"000000000777".to_vec();
    let replaced = |remac| Mutation::Replace {
        field: 4,
        value: amount.clone(),
        remac,
    };
    assert_eq!(step(p, replaced(false)), 0, "{:?}", p.seen);
    assert!(p.seen.codes.contains_key("A0"), "{:?}", p.seen);
    assert_eq!(step(p, replaced(true)), 1, "{:?}", p.seen);
    assert_eq!(
        step(p, Mutation::Twice),
        1,
        "the second is a resend: {:?}",
        p.seen
    );
    let wire = step(p, Mutation::Truncate(5));
    assert_eq!(wire, 0);
    assert!(p.seen.closed + p.seen.answered >= p.seen.frames);
}

/// The random steps are not vacuous: from a fixed seed they reach approvals that move
/// money, MAC refusals, format errors and closes.
#[test]
fn random_steps_reach_approvals_refusals_and_closes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let mut b = bench();
    for _ in 0..300 {
        let step = step().new_tree(&mut runner).unwrap().current();
        b.path.step(&step);
    }
    let seen = &b.path.seen;
    assert!(seen.moved_money >= 10, "{seen:?}");
    for code in ["00", "A0", "30", "55"] {
        assert!(seen.codes.contains_key(code), "{code}: {seen:?}");
    }
    assert!(seen.closed > 0 && seen.framing_closed > 0, "{seen:?}");
}
