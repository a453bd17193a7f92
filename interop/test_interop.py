"""Interop: an independent CUP POS client (pyiso8583 + cryptography, written from
spec/cup-pos.md) against a real `poskit host --demo` process.

Covers every message type of §2.2 (0100, 0200, 0220, 0400, 0500, 0320, 0800, 0820, 0620)
and the three sign-in key layouts (60.3 = 001/003/004), then hostile frames.
"""

from __future__ import annotations

import socket
import struct

import pytest

from cup_client import HEADER, TPDU, Answer, Terminal, encode, frame

FINANCIAL_MTIS = {"0110", "0210", "0230", "0410"}


def session(host_addr, demo, name="approved", layout="003") -> tuple[Terminal, dict]:
    s = demo[name]
    t = Terminal(host_addr, s["tid"], s["mid"], bytes.fromhex(s["tmk"]))
    answer = t.sign_in(layout)
    assert answer.code == "00", answer.fields
    return t, s


def check(t: Terminal, request: dict, answer: Answer, code: str) -> None:
    """What every answer owes its request (§2.1, §2.4, §3.3)."""
    assert answer.mti == f"{int(request['t']) + 10:04d}", answer.fields
    assert answer.tpdu == TPDU[:1] + TPDU[3:5] + TPDU[1:3], "TPDU addresses swapped"
    assert answer.code == code, answer.fields
    if "11" in request:
        assert answer.fields.get("11") == request["11"], "trace echoed"
    assert answer.fields.get("41") == request["41"]
    assert answer.fields.get("42") == request["42"]
    # A format error (30) answers what may not be a readable request: no issuer to name.
    if answer.mti in FINANCIAL_MTIS and code != "30":
        f44 = answer.fields.get("44", "")
        assert len(f44) == 22, f"field 44 is issuer AN11 + acquirer AN11: {f44!r}"
        assert f44[:11].strip(), "issuer institution id"
        assert f44[11:].strip() == answer.fields["32"], "acquirer id is field 32's"
        if code == "00":
            assert answer.mac_ok(t.keys.mak8), "the approval's MAC verifies"


def sale(t, card, amount_fen=100, pin=None, **kw):
    pin = card["pin"] if pin is None else pin
    return t.financial("0200", "000000", "00", "22", card, pin, amount_fen, **kw)


# ---- 0800 sign-in: the three key layouts -------------------------------------------


@pytest.mark.parametrize("layout", ["001", "003", "004"])
def test_sign_in_with_each_key_layout_gives_keys_that_work(host_addr, demo, layout):
    t, card = session(host_addr, demo, layout=layout)
    assert len(t.batch) == 6
    # The keys work: a balance inquiry with a PIN block under the PIK and a MAC under
    # the MAK is approved, and its answer's MAC verifies.
    answer, request = t.financial("0200", "310000", "00", "01", card, card["pin"], None)
    check(t, request, answer, "00")
    f54 = answer.fields["54"]
    assert len(f54) == 20 and f54[4:7] == "156" and f54[7] in "CD", f54
    t.close()


def test_sign_in_of_an_unregistered_terminal_is_97(host_addr, demo):
    s = demo["unregistered_terminal"]
    t = Terminal(host_addr, s["tid"], s["mid"], bytes.fromhex(s["tmk"]))
    answer = t.sign_in("003")
    assert answer.mti == "0810" and answer.code == "97", answer.fields
    assert "62" not in answer.fields, "no keys for a stranger"


# ---- 0820 sign-off and echo ----------------------------------------------------------


def test_echo_test_with_and_without_field_11(host_addr, demo):
    t, _ = session(host_addr, demo)
    base = {"t": "0820", "41": t.tid, "42": t.mid, "60": t.f60("00", "301")}
    answer = t.send(base, mac=False)
    check(t, base, answer, "00")
    assert "11" not in answer.fields
    with_stan = dict(base, **{"11": t.next_stan()})
    check(t, with_stan, t.send(with_stan, mac=False), "00")


def test_sign_off_withdraws_the_keys(host_addr, demo):
    t, card = session(host_addr, demo, name="second_card")
    request = {"t": "0820", "11": t.next_stan(), "41": t.tid, "42": t.mid,
               "60": t.f60("00", "002")}
    check(t, request, t.send(request, mac=False), "00")
    answer, request = sale(t, card)
    assert answer.code == "A0", "no MAK after sign-off"
    session(host_addr, demo, name="second_card")


# ---- 0200 sale, void, declines; 0400 reversal ------------------------------------------


def test_sale_then_void(host_addr, demo):
    t, card = session(host_addr, demo)
    answer, request = sale(t, card, 1234)
    check(t, request, answer, "00")
    assert len(answer.fields["37"]) == 12 and len(answer.fields["38"]) == 6
    f61 = t.batch + request["11"] + "0000"
    void, vreq = t.financial("0200", "200000", "00", "23", card, card["pin"], 1234,
                             extra={"37": answer.fields["37"], "38": answer.fields["38"],
                                    "61": f61})
    check(t, vreq, void, "00")


DECLINES = ["insufficient_funds", "lost", "stolen", "pick_up", "expired", "restricted",
            "pin_tries_exceeded", "not_permitted", "over_limit", "issuer_down",
            "issuer_timeout"]


@pytest.mark.parametrize("name", DECLINES)
def test_a_declined_sale_has_its_code_and_field_44(host_addr, demo, name):
    t, card = session(host_addr, demo, name=name)
    answer, request = sale(t, card, card["amount_fen"])
    check(t, request, answer, card["expected_code"])


def test_a_wrong_pin_is_55(host_addr, demo):
    t, card = session(host_addr, demo, name="second_card")
    answer, request = sale(t, card, pin="000000")
    check(t, request, answer, "55")


def test_a_bad_mac_is_a0(host_addr, demo):
    t, card = session(host_addr, demo)
    request = {"t": "0200", "3": "000000", "4": "000000000100", "11": t.next_stan(),
               "25": "00", "41": t.tid, "42": t.mid, "49": "156", "60": t.f60("22")}
    request.update(t.card_fields(card, card["pin"]))
    raw = encode(request, t.keys.mak8)
    tampered = raw[:-8] + bytes(b ^ 0x01 for b in raw[-8:])
    check(t, request, t.exchange_raw(frame(tampered)), "A0")


def test_a_retransmitted_sale_gets_its_first_answer_again(host_addr, demo):
    t, card = session(host_addr, demo)
    request = {"t": "0200", "3": "000000", "4": "000000000200", "11": t.next_stan(),
               "25": "00", "41": t.tid, "42": t.mid, "49": "156", "60": t.f60("22")}
    request.update(t.card_fields(card, card["pin"]))
    data = frame(encode(request, t.keys.mak8))
    first = t.exchange_raw(data)
    again = t.exchange_raw(data)
    check(t, request, first, "00")
    assert again.raw == first.raw, "the first answer, byte for byte"


def test_a_reversal_reverses_once_even_when_sent_twice(host_addr, demo):
    t, card = session(host_addr, demo)
    answer, request = sale(t, card, 300)
    check(t, request, answer, "00")
    reversal = {k: v for k, v in request.items() if k not in ("52", "53", "26", "35")}
    reversal.update({"t": "0400", "2": card["pan"], "14": card["expiry"], "22": "022",
                     "39": "98", "38": answer.fields["38"]})
    first = t.send(reversal, mac=True)
    check(t, reversal, first, "00")
    again = t.send(reversal, mac=True)
    check(t, reversal, again, "00")
    assert again.fields["37"] == first.fields["37"], "the same reversal"


# ---- 0220 refund and advices -------------------------------------------------------------


def test_refunds_in_the_open_batch_and_of_an_unknown_rrn_are_declined(host_addr, demo):
    t, card = session(host_addr, demo)
    answer, request = sale(t, card, 500)
    check(t, request, answer, "00")
    date = answer.fields["13"]

    def refund(rrn):
        return t.financial("0220", "200000", "00", "25", card, None, 100,
                           extra={"37": rrn, "61": "000000000000" + date})

    same_batch, req = refund(answer.fields["37"])
    check(t, req, same_batch, "12")  # same batch: void it instead (Q2014 12)
    unknown, req = refund("999999999999")
    check(t, req, unknown, "25")  # no original


def test_the_pre_authorization_family(host_addr, demo):
    t, card = session(host_addr, demo)
    pin = card["pin"]
    pre, req = t.financial("0100", "030000", "06", "10", card, pin, 1000)
    check(t, req, pre, "00")
    orig = {"38": pre.fields["38"], "61": "000000000000" + pre.fields["13"]}
    cancel, req = t.financial("0100", "200000", "06", "11", card, pin, 1000, extra=orig)
    check(t, req, cancel, "00")

    pre, req = t.financial("0100", "030000", "06", "10", card, pin, 2000)
    check(t, req, pre, "00")
    orig = {"38": pre.fields["38"], "61": "000000000000" + pre.fields["13"]}
    done, req = t.financial("0200", "000000", "06", "20", card, pin, 2000, extra=orig)
    check(t, req, done, "00")
    f61 = t.batch + req["11"] + done.fields["13"]
    undo, req = t.financial("0200", "200000", "06", "21", card, pin, 2000,
                            extra={"37": done.fields["37"], "38": done.fields["38"],
                                   "61": f61})
    check(t, req, undo, "00")

    pre, req = t.financial("0100", "030000", "06", "10", card, pin, 700)
    check(t, req, pre, "00")
    orig = {"38": pre.fields["38"], "61": "000000000000" + pre.fields["13"]}
    advice, req = t.financial("0220", "000000", "06", "24", card, None, 700, extra=orig)
    check(t, req, advice, "00")


@pytest.mark.parametrize("mti,f3,f25,f60_1", [
    ("0100", "030000", "60", "10"),  # 追加预授权
    ("0220", "000000", "00", "30"),  # 离线结算
    ("0620", "000000", "00", "00"),  # IC 脚本结果通知 (60.3 = 951)
])
def test_types_the_host_does_not_offer_are_answered_not_approved(host_addr, demo, mti,
                                                                 f3, f25, f60_1):
    t, card = session(host_addr, demo)
    request = {"t": mti, "3": f3, "4": "000000000100", "11": t.next_stan(), "25": f25,
               "41": t.tid, "42": t.mid, "49": "156",
               "60": t.f60(f60_1, "951" if mti == "0620" else "000")}
    request.update(t.card_fields(card, None))
    answer = t.send(request, mac=True)
    assert answer.mti == f"{int(mti) + 10:04d}"
    # Well formed, of the CUP table, not offered: 40 (function not supported), not 30.
    assert answer.code == "40", answer.fields
    assert answer.fields.get("11") == request["11"]


# ---- 0500 settlement, 0320 batch upload ---------------------------------------------


def settle(t: Terminal, debit_fen: int, debits: int) -> tuple[Answer, dict]:
    totals = f"{debit_fen:012d}{debits:03d}{0:012d}{0:03d}0"
    request = {"t": "0500", "11": t.next_stan(), "41": t.tid, "42": t.mid,
               "48": totals + f"{0:012d}{0:03d}{0:012d}{0:03d}0", "49": "156",
               "60": t.f60("00", "201"), "63": "01 "}
    return t.send(request, mac=False), request


def batch_end(t: Terminal, code: str, uploaded: int) -> None:
    request = {"t": "0320", "11": t.next_stan(), "41": t.tid, "42": t.mid,
               "48": f"{uploaded:04d}", "60": t.f60("00", code)}
    check(t, request, t.send(request, mac=False), "00")


def test_a_balanced_settlement_then_batch_end(host_addr, demo):
    t, card = session(host_addr, demo, name="over_limit")
    answer, request = sale(t, card, 100)
    check(t, request, answer, "00")
    answer, request = settle(t, 100, 1)
    assert answer.mti == "0510" and answer.code in (None, "00"), answer.fields
    assert answer.fields["48"][30] == "1", "对账平"
    batch_end(t, "207", 0)
    t2, _ = session(host_addr, demo, name="over_limit")
    assert t2.batch != t.batch, "the next batch after settlement"


def test_an_unbalanced_settlement_then_batch_upload(host_addr, demo):
    t, card = session(host_addr, demo, name="terminal_not_permitted")
    answer, request = settle(t, 100, 1)  # a sale the host never saw
    assert answer.mti == "0510" and answer.fields["48"][30] == "2", "对账不平"
    assert answer.fields["48"][:15] == "000000000000000", "the host's own totals"
    item = "00" + "000001" + card["pan"].rjust(20, "0") + f"{100:012d}"
    upload = {"t": "0320", "11": t.next_stan(), "41": t.tid, "42": t.mid,
              "48": "01" + item, "60": t.f60("00", "201")}
    check(t, upload, t.send(upload, mac=False), "00")
    batch_end(t, "202", 1)


# ---- hostile frames ------------------------------------------------------------------


def test_a_frame_cut_short_is_answered_30_echoing_11_41_42(host_addr, demo):
    t, card = session(host_addr, demo)
    request = {"t": "0200", "3": "000000", "4": "000000000100", "11": t.next_stan(),
               "25": "00", "41": t.tid, "42": t.mid, "49": "156", "60": t.f60("22")}
    request.update(t.card_fields(card, card["pin"]))
    cut = encode(request, t.keys.mak8)[:-3]
    answer = t.exchange_raw(frame(cut))
    check(t, request, answer, "30")


def raw_connection(host_addr) -> socket.socket:
    return socket.create_connection(host_addr, timeout=10)


def closed_without_answer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return True


def test_an_oversize_length_prefix_closes_the_connection(host_addr):
    with raw_connection(host_addr) as sock:
        sock.sendall(struct.pack(">H", 0xFFFF) + TPDU + HEADER + b"\x02\x00")
        assert closed_without_answer(sock)


def test_bytes_that_are_not_bcd_in_the_mti_get_no_answer_or_a_30(host_addr, demo):
    with raw_connection(host_addr) as sock:
        sock.sendall(frame(b"\xAB\xCD" + bytes(8)))
        try:
            head = sock.recv(2)
        except (ConnectionResetError, TimeoutError):
            head = b""
        if head:
            body = sock.recv(struct.unpack(">H", head)[0])
            assert b"30" in body
    # The host is still there.
    t, card = session(host_addr, demo)
    answer, request = sale(t, card)
    check(t, request, answer, "00")


def test_a_financial_request_without_mac_is_30(host_addr, demo):
    t, card = session(host_addr, demo)
    request = {"t": "0200", "3": "000000", "4": "000000000100", "11": t.next_stan(),
               "25": "00", "41": t.tid, "42": t.mid, "49": "156", "60": t.f60("22")}
    request.update(t.card_fields(card, card["pin"]))
    check(t, request, t.send(request, mac=False), "30")
