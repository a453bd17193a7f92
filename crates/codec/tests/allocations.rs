//! Decoding allocates nothing: a counting allocator sees zero allocations while a sale is
//! decoded and every field read; nor does building a sale and encoding it into a reused
//! buffer.
#![allow(unsafe_code)] // a counting global allocator: a test, not part of the binary

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use poskit_codec::frame::{decode_frame, encode_frame_into};
use poskit_codec::{CUP_POS, ISO87_ASCII, Message, sample};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread under test only: the test harness's own threads allocate when
    /// they like (a count over every thread failed now and then under a loaded machine).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(std::cell::Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decoding_a_sale_and_reading_every_field_allocates_nothing() {
    let mut frame_bytes = Vec::new();
    encode_frame_into(
        &sample::TPDU,
        &sample::HEADER,
        &sample::cup_sale(),
        &mut frame_bytes,
    );
    let iso_bytes = sample::iso87_sale().encode();

    COUNTED.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut checksum = 0usize;
    for _ in 0..100 {
        let frame = decode_frame(&CUP_POS, &frame_bytes).unwrap();
        for field in frame.message.fields() {
            if let Some(d) = field.digits() {
                checksum += d.iter().map(usize::from).sum::<usize>();
            }
            checksum += field.wire().len();
        }
        checksum += frame
            .message
            .subfield("60.2")
            .map_or(0, |v| usize::from(v.eq_str("000001")));
        checksum += frame.message.mac_input().map_or(0, <[u8]>::len);
        let iso = Message::decode(&ISO87_ASCII, &iso_bytes).unwrap();
        checksum += iso.fields().count();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.with(|c| c.set(false));
    assert!(checksum > 0);
    assert_eq!(after - before, 0, "decoding allocated");
}

#[test]
fn building_a_sale_and_encoding_it_into_a_reused_buffer_allocates_nothing() {
    use poskit_codec::sample::SALE_FIELDS;
    use poskit_codec::{MessageBuilder, Mti};
    let mut buffer = Vec::with_capacity(1024);
    let mut frame_buffer = Vec::with_capacity(1024);

    COUNTED.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut checksum = 0usize;
    for _ in 0..100 {
        for profile in [&CUP_POS, &ISO87_ASCII] {
            let mut m = MessageBuilder::new(profile, Mti(*b"0200"));
            for &(number, value) in SALE_FIELDS {
                m.set(number, value).unwrap();
            }
            buffer.clear();
            m.encode_into(&mut buffer);
            checksum += buffer.len();
            frame_buffer.clear();
            encode_frame_into(&sample::TPDU, &sample::HEADER, &m, &mut frame_buffer);
            checksum += frame_buffer.len();
        }
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.with(|c| c.set(false));
    assert!(checksum > 0);
    assert_eq!(after - before, 0, "building or encoding allocated");
}
