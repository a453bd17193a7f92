"""An independent CUP POS terminal client, written from spec/cup-pos.md only.

It shares nothing with poskit: the ISO 8583 codec is pyiso8583 with a spec of its own
for the CUP POS profile (§2.3: packed BCD, BCD length prefixes), the framing is §2.1
(2-byte length, TPDU, 6-byte BCD header), and MAC, PIN block and key unwrapping are
done with `cryptography` (§3.2–§3.4).
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass, field

import iso8583

try:  # cryptography >= 43 keeps DES where it belongs
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

# ---- §2.3 field table as a pyiso8583 spec -------------------------------------------


def _n(length: int, pad: str = "left") -> dict:
    """A fixed numeric field: packed BCD, right-aligned (pad nibble first) by default."""
    spec = {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": length,
            "len_count": "nibbles", "desc": ""}
    spec["left_pad" if pad == "left" else "right_pad"] = "0"
    return spec


def _nvar(len_type: int, max_len: int) -> dict:
    """A variable numeric field: BCD length (digits), left-aligned BCD, trailing 0 nibble."""
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_len,
            "len_count": "nibbles", "right_pad": "0", "desc": ""}


def _an(length: int) -> dict:
    return {"data_enc": "latin-1", "len_enc": "b", "len_type": 0, "max_len": length,
            "desc": ""}


def _anvar(len_type: int, max_len: int) -> dict:
    return {"data_enc": "latin-1", "len_enc": "bcd", "len_type": len_type,
            "max_len": max_len, "desc": ""}


def _b(length: int) -> dict:
    return {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": length, "desc": ""}


def _bvar(len_type: int, max_len: int) -> dict:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_len,
            "desc": ""}


CUP_SPEC: dict = {
    "h": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 0, "desc": "none"},
    "t": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 2, "desc": "MTI"},
    "p": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 8, "desc": "bitmap"},
    "2": _nvar(1, 19),
    "3": _n(6),
    "4": _n(12),
    "11": _n(6),
    "12": _n(6),
    "13": _n(4),
    "14": _n(4),
    "15": _n(4),
    "22": _n(3, pad="right"),  # n3 left-aligned: 021 -> 02 10
    "23": _n(3),
    "25": _n(2),
    "26": _n(2),
    "32": _nvar(1, 11),
    "35": _nvar(1, 37),
    "36": _nvar(2, 104),
    "37": _an(12),
    "38": _an(6),
    "39": _an(2),
    "41": _an(8),
    "42": _an(15),
    "44": _anvar(1, 25),
    "48": _nvar(2, 322),
    "49": _an(3),
    "52": _b(8),
    "53": _n(16),
    "54": _anvar(2, 40),
    "55": _bvar(2, 255),
    "60": _nvar(2, 17),
    "61": _nvar(2, 29),
    "62": _bvar(2, 512),
    "63": _anvar(2, 163),
    "64": _an(8),  # 8 uppercase ASCII hex characters (§3.3)
}

# ---- §3: DES, check values, MAC, PIN block ------------------------------------------


def _three_keys(key: bytes) -> bytes:
    """DES under K is 3DES under K‖K‖K; two-key 3DES under K1‖K2 is K1‖K2‖K1."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    assert len(key) == 24, len(key)
    return key


def ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """DES (8-byte key) or 3DES (16/24-byte key) in ECB."""
    enc = Cipher(TripleDES(_three_keys(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(TripleDES(_three_keys(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def check_value(key: bytes) -> bytes:
    """§3.2: first 4 bytes of E_key(8 x 0x00)."""
    return ecb_encrypt(key, bytes(8))[:4]


def cup_ecb_mac(mak8: bytes, mab: bytes) -> bytes:
    """§3.3 CUP ECB MAC with a single-length MAK: 8 ASCII hex characters."""
    assert len(mak8) == 8
    padded = mab + bytes(-len(mab) % 8)
    block = bytes(8)
    for i in range(0, len(padded), 8):
        block = bytes(a ^ b for a, b in zip(block, padded[i:i + 8]))
    hexed = block.hex().upper().encode()
    enc1 = ecb_encrypt(mak8, hexed[:8])
    temp = bytes(a ^ b for a, b in zip(enc1, hexed[8:]))
    enc2 = ecb_encrypt(mak8, temp)
    return enc2.hex().upper().encode()[:8]


def pin_block(pin: str, pan: str, pik: bytes) -> bytes:
    """§3.4: ISO 9564 format 0 with the 12 PAN digits left of the check digit."""
    pin_field = bytes.fromhex(f"{len(pin):02d}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    clear = bytes(a ^ b for a, b in zip(pin_field, pan_field))
    return ecb_encrypt(pik, clear)


LAYOUTS = {"001": (8, 2), "003": (16, 2), "004": (16, 3)}


@dataclass
class Keys:
    pik: bytes
    mak8: bytes  # the MAK as used: single DES under its first half (§3.2)
    tdk: bytes | None


def parse_field62(layout: str, tmk: bytes, f62: bytes) -> Keys:
    """§3.2: unwrap PIK, MAK (and TDK) under the TMK and check each check value.

    Strict as a terminal that loads the MAK as K‖K: the MAK's check value must be that of
    the key as used (DES_K(0) for K‖0)."""
    key_len, count = LAYOUTS[layout]
    slot = key_len + 4
    if len(f62) != slot * count:
        raise ValueError(f"field 62 is {len(f62)} bytes, layout {layout} needs {slot * count}")
    keys = []
    for i in range(count):
        wrapped, cv = f62[i * slot:i * slot + key_len], f62[i * slot + key_len:(i + 1) * slot]
        keys.append((ecb_decrypt(tmk, wrapped), cv))
    (pik, pik_cv), (mak, mak_cv) = keys[0], keys[1]
    if check_value(pik) != pik_cv:
        raise ValueError("PIK check value mismatch")
    if key_len == 16 and mak[8:] == bytes(8):
        mak_used = mak[:8]  # K‖0 is used as K‖K = single DES under K
    elif key_len == 16 and mak[8:] != mak[:8]:
        raise ValueError("MAK is a true double-length key: not the single-length MAK of §3.2")
    else:
        mak_used = mak[:8]
    if check_value(mak_used) != mak_cv:
        raise ValueError("MAK check value is not that of the key as used (K‖K)")
    tdk = None
    if count == 3:
        tdk, tdk_cv = keys[2]
        if check_value(tdk) != tdk_cv:
            raise ValueError("TDK check value mismatch")
    return Keys(pik=pik, mak8=mak_used, tdk=tdk)


# ---- §2.1 framing -------------------------------------------------------------------

TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603100000000")


def frame(message: bytes, tpdu: bytes = TPDU, header: bytes = HEADER) -> bytes:
    body = tpdu + header + message
    return struct.pack(">H", len(body)) + body


def encode(fields: dict, mac_key: bytes | None = None) -> bytes:
    """The message (MTI onward); with `mac_key`, field 64 computed over MTI..F63."""
    doc = {k: v for k, v in fields.items()}
    if mac_key is not None:
        doc["64"] = "00000000"
    raw, _ = iso8583.encode(doc, CUP_SPEC)
    raw = bytes(raw)
    if mac_key is not None:
        raw = raw[:-8] + cup_ecb_mac(mac_key, raw[:-8])
    return raw


@dataclass
class Answer:
    tpdu: bytes
    header: bytes
    raw: bytes
    fields: dict

    @property
    def mti(self) -> str:
        return self.fields["t"]

    @property
    def code(self) -> str | None:
        return self.fields.get("39")

    def mac_ok(self, mak8: bytes) -> bool:
        return "64" in self.fields and cup_ecb_mac(mak8, self.raw[:-8]) == self.raw[-8:]


def read_frame(sock: socket.socket) -> bytes:
    head = _read_exact(sock, 2)
    (length,) = struct.unpack(">H", head)
    return _read_exact(sock, length)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def parse_answer(body: bytes) -> Answer:
    tpdu, header, message = body[:5], body[5:11], body[11:]
    decoded, _ = iso8583.decode(bytearray(message), CUP_SPEC)
    return Answer(tpdu=tpdu, header=header, raw=message, fields=decoded)


# ---- a terminal ---------------------------------------------------------------------

# The last trace used per terminal id, shared by every session of that terminal.
_STANS: dict[str, int] = {}


@dataclass
class Terminal:
    """One terminal's session: its keys, trace counter and batch (§4.3)."""

    host: tuple
    tid: str
    mid: str
    tmk: bytes
    stan: int = 0
    batch: str = "000001"
    keys: Keys | None = None
    layout: str = "003"
    sock: socket.socket | None = field(default=None, repr=False)

    def connect(self) -> None:
        self.sock = socket.create_connection(self.host, timeout=10)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def next_stan(self) -> str:
        """§4.3: a new trace for every message, never reused by this terminal."""
        # A random first trace: a host that has seen this terminal before (POSKIT_HOST)
        # would take a reused trace for a retransmission.
        stan = _STANS.get(self.tid, random.randrange(1, 900_000)) % 999_999 + 1
        _STANS[self.tid] = stan
        self.stan = stan
        return f"{stan:06d}"

    def exchange_raw(self, data: bytes) -> Answer:
        if self.sock is None:
            self.connect()
        self.sock.sendall(data)
        return parse_answer(read_frame(self.sock))

    def send(self, fields: dict, mac: bool) -> Answer:
        key = self.keys.mak8 if mac else None
        return self.exchange_raw(frame(encode(fields, key)))

    def f60(self, type_code: str, network: str = "000") -> str:
        return type_code + self.batch + network

    def sign_in(self, layout: str = "003") -> Answer:
        answer = self.send({
            "t": "0800", "11": self.next_stan(), "41": self.tid, "42": self.mid,
            "60": "00" + self.batch + layout, "63": "01 ",
        }, mac=False)
        if answer.code == "00":
            self.keys = parse_field62(layout, self.tmk, bytes.fromhex(answer.fields["62"]))
            self.layout = layout
            self.batch = answer.fields["60"][2:8]
        return answer

    def card_fields(self, card: dict, pin: str | None) -> dict:
        """Swiped card (track 2) with its PIN (§2.3 fields 22, 26, 35, 52, 53)."""
        fields = {"35": card["track2"].replace("=", "D"),
                  "22": "021" if pin else "022"}
        if pin:
            fields["26"] = "12"
            fields["52"] = pin_block(pin, card["pan"], self.keys.pik).hex().upper()
            fields["53"] = ("26" if len(self.keys.pik) == 16 else "20") + "0" * 14
        return fields

    def financial(self, mti: str, f3: str, f25: str, f60_1: str, card: dict | None,
                  pin: str | None, amount_fen: int | None, extra: dict | None = None,
                  stan: str | None = None) -> tuple[Answer, dict]:
        fields = {"t": mti, "3": f3, "11": stan or self.next_stan(), "25": f25,
                  "41": self.tid, "42": self.mid, "49": "156", "60": self.f60(f60_1)}
        if amount_fen is not None:
            fields["4"] = f"{amount_fen:012d}"
        if card is not None:
            fields.update(self.card_fields(card, pin))
        fields.update(extra or {})
        return self.send(fields, mac=True), fields
