#!/usr/bin/env python3
"""Known-answer vectors for poskit-security, from an independent implementation.

The algorithms are written here again from the text of `spec/cup-pos.md` §3 on top of
Python's `cryptography` package (OpenSSL): DES as single-key TripleDES, 3DES, SM4 in ECB.
The Rust tests read the JSON this writes and must agree byte for byte.

Regenerate (the output is committed; CI does not run this):
    pip install cryptography
    python3 crates/security/testdata/gen_vectors.py > crates/security/testdata/vectors.json
"""

import json
import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

warnings.filterwarnings("ignore")  # single-key TripleDES is deprecated, and is what DES is
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES  # noqa: E402


def ecb(alg, key, data, decrypt=False):
    cipher = Cipher(alg(key), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def des_family(key, data, decrypt=False):
    assert len(key) in (8, 16, 24)
    return ecb(TripleDES, key, data, decrypt)


def sm4(key, data, decrypt=False):
    assert len(key) == 16
    return ecb(algorithms.SM4, key, data, decrypt)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def zero_pad(data, n):
    if len(data) % n:
        data += bytes(n - len(data) % n)
    return data


def cup_ecb_mac(encrypt, n, data):
    """§3.3 (n = 8) and §3.6 (n = 16)."""
    result = bytes(n)
    padded = zero_pad(data, n)
    for i in range(0, len(padded), n):
        result = xor(result, padded[i:i + n])
    expanded = result.hex().upper().encode()
    temp = xor(encrypt(expanded[:n]), expanded[n:])
    return encrypt(temp).hex().upper()[:8]


def x919_mac(key, data):
    left, right = key[:8], key[8:]
    padded = zero_pad(data, 8) or bytes(8)
    state = bytes(8)
    for i in range(0, len(padded), 8):
        state = des_family(left, xor(state, padded[i:i + 8]))
    state = des_family(right, state, decrypt=True)
    return des_family(left, state).hex().upper()


def pin_block(pan, pin, n):
    """ISO 9564 format 0 (§3.4), or its SM4 variant with 16-byte blocks (§3.6)."""
    pin_field = ("0" + format(len(pin), "X") + pin).ljust(2 * n, "F")
    pan12 = pan[-13:-1]
    pan_field = ("0" * (2 * n - 12)) + pan12
    return xor(bytes.fromhex(pin_field), bytes.fromhex(pan_field))


def kcv(encrypt, n):
    return encrypt(bytes(n))[:4].hex().upper()


DES_KEY = "0123456789ABCDEF"
TDES2_KEY = "0123456789ABCDEFFEDCBA9876543210"
TDES3_KEY = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"
SM4_KEY = "0123456789ABCDEFFEDCBA9876543210"


def data_of(length):
    # A fixed, non-repeating pattern: bytes 0x00, 0x11*1+7, ... mod 256.
    return bytes((i * 37 + 11) % 256 for i in range(length))


def main():
    out = {"mac": [], "pin_block": [], "check_value": [], "field62": []}
    lengths = [0, 1, 7, 8, 9, 15, 16, 17, 100]
    for key in (DES_KEY, TDES2_KEY, TDES3_KEY):
        k = bytes.fromhex(key)
        for n in lengths:
            d = data_of(n)
            out["mac"].append({"algo": "cup-ecb", "key": key, "data": d.hex().upper(),
                               "mac": cup_ecb_mac(lambda b: des_family(k, b), 8, d)})
    k = bytes.fromhex(SM4_KEY)
    for n in lengths:
        d = data_of(n)
        out["mac"].append({"algo": "cup-ecb-sm4", "key": SM4_KEY, "data": d.hex().upper(),
                           "mac": cup_ecb_mac(lambda b: sm4(k, b), 16, d)})
    k = bytes.fromhex(TDES2_KEY)
    for n in lengths:
        d = data_of(n)
        out["mac"].append({"algo": "x919", "key": TDES2_KEY, "data": d.hex().upper(),
                           "mac": x919_mac(k, d)})

    cases = [("123456789012345678", "123456"),  # the worked example of §3.4
             ("6222021234567890128", "1234"),
             ("4111111111111111", "000000"),
             ("6217001234567890123", "987654321098"),
             ("6222600910000000017", "24680")]
    for pan, pin in cases:
        for algorithm, key, n, enc in (
            ("clear", None, 8, None),
            ("des", DES_KEY, 8, lambda kk, b: des_family(kk, b)),
            ("3des", TDES2_KEY, 8, lambda kk, b: des_family(kk, b)),
            ("sm4", SM4_KEY, 16, lambda kk, b: sm4(kk, b)),
        ):
            clear = pin_block(pan, pin, n)
            block = clear if enc is None else enc(bytes.fromhex(key), clear)
            out["pin_block"].append({"pan": pan, "pin": pin, "algorithm": algorithm, "key": key,
                                     "clear": clear.hex().upper(), "pin_block": block.hex().upper()})

    for family, key in (("3des", DES_KEY), ("3des", TDES2_KEY), ("3des", TDES3_KEY), ("sm4", SM4_KEY)):
        k = bytes.fromhex(key)
        enc = (lambda b: sm4(k, b)) if family == "sm4" else (lambda b: des_family(k, b))
        out["check_value"].append({"family": family, "key": key,
                                   "check_value": kcv(enc, 16 if family == "sm4" else 8)})

    tmk = bytes.fromhex("11111111111111112222222222222222")
    clear_keys = {
        "001": ["1A2B3C4D5E6F7081", "8192A3B4C5D6E7F8"],
        "003": ["1A2B3C4D5E6F70818192A3B4C5D6E7F8", "0F1E2D3C4B5A69788796A5B4C3D2E1F0"],
        "004": ["1A2B3C4D5E6F70818192A3B4C5D6E7F8", "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
                "F0E1D2C3B4A5968778695A4B3C2D1E0F"],
    }
    for layout, keys in clear_keys.items():
        f62 = b""
        for key in keys:
            k = bytes.fromhex(key)
            f62 += des_family(tmk, k) + des_family(k, bytes(8))[:4]
        out["field62"].append({"layout": layout, "tmk": tmk.hex().upper(), "keys": keys,
                               "field62": f62.hex().upper()})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
