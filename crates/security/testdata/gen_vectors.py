#!/usr/bin/env python3
"""Known-answer vectors for poskit-security, from an independent implementation.

The algorithms are written here again from the text of `spec/cup-pos.md` §3 (MAC §3.3,
PIN block §3.4, sign-in keys §3.2, SM4 variants §3.6) on top of Python's `cryptography`
package (OpenSSL): DES as TripleDES with the 8-byte key (OpenSSL repeats it), 2- and
3-key 3DES, SM4, all in ECB. Nothing here is translated from the Rust code. The Rust
tests read the JSON this writes and must agree byte for byte.

Regenerate (the output is committed; CI does not run this):
    pip install cryptography
    python3 crates/security/testdata/gen_vectors.py > crates/security/testdata/vectors.json

All keys are test keys.
"""

import json
import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

warnings.filterwarnings("ignore")  # TripleDES is deprecated, and single-key TripleDES is DES
try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43
    TripleDES = algorithms.TripleDES


def ecb(alg, key, data, decrypt=False):
    cipher = Cipher(alg(key), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def des(key, data, decrypt=False):
    """DES (8-byte key) or 3DES EDE (16- or 24-byte key)."""
    assert len(key) in (8, 16, 24)
    return ecb(TripleDES, key, data, decrypt)


def sm4(key, data, decrypt=False):
    assert len(key) == 16
    return ecb(algorithms.SM4, key, data, decrypt)


def xor(a, b):
    assert len(a) == len(b)
    return bytes(x ^ y for x, y in zip(a, b))


def zero_pad(data, n):
    """Pad with 0x00 to a multiple of n; empty data becomes one zero block."""
    if not data:
        return bytes(n)
    if len(data) % n:
        data += bytes(n - len(data) % n)
    return data


def cup_ecb_mac(encrypt, n, data):
    """§3.3 with 8-byte blocks (DES/3DES), §3.6 with 16-byte blocks (SM4).

    Returns field 64 as text: 8 uppercase hex characters."""
    padded = zero_pad(data, n)
    result = bytes(n)
    for i in range(0, len(padded), n):
        result = xor(result, padded[i:i + n])      # step 2
    expanded = result.hex().upper().encode()        # step 3: 2n ASCII characters
    enc1 = encrypt(expanded[:n])                    # step 4
    temp = xor(enc1, expanded[n:])                  # step 5
    enc2 = encrypt(temp)                            # step 6
    return enc2.hex().upper()[:8]                   # step 7


def x919_mac(key, data):
    """ANSI X9.19: CBC-DES with the left half, then D(right), E(left). 16 hex digits."""
    assert len(key) == 16
    left, right = key[:8], key[8:]
    padded = zero_pad(data, 8)
    state = bytes(8)
    for i in range(0, len(padded), 8):
        state = des(left, xor(state, padded[i:i + 8]))
    state = des(right, state, decrypt=True)
    return des(left, state).hex().upper()


def pin_block(pan, pin, n):
    """ISO 9564 format 0 (§3.4, n = 8) or its SM4 variant (§3.6, n = 16), clear."""
    assert 4 <= len(pin) <= 12 and 13 <= len(pan) <= 19
    pin_field = ("0" + format(len(pin), "X") + pin).ljust(2 * n, "F")
    pan12 = pan[-13:-1]  # right to left from the 2nd digit from the right
    pan_field = "0" * (2 * n - 12) + pan12
    return xor(bytes.fromhex(pin_field), bytes.fromhex(pan_field))


def check_value(encrypt, n):
    return encrypt(bytes(n))[:4].hex().upper()


DES_KEY = "0123456789ABCDEF"
TDES2_KEY = "0123456789ABCDEFFEDCBA9876543210"
TDES3_KEY = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"
SM4_KEY = "0123456789ABCDEFFEDCBA9876543210"
TMK = "11111111111111112222222222222222"
MAC_DATA_LENGTHS = [0, 1, 7, 8, 9, 15, 16, 17, 100]


def data_of(length):
    """A fixed, non-repeating byte pattern: (37 i + 11) mod 256."""
    return bytes((i * 37 + 11) % 256 for i in range(length))


def mac_vectors():
    out = []
    for algo, key, mac in (
        ("cup-ecb", DES_KEY, lambda k, d: cup_ecb_mac(lambda b: des(k, b), 8, d)),
        ("cup-ecb", TDES2_KEY, lambda k, d: cup_ecb_mac(lambda b: des(k, b), 8, d)),
        ("cup-ecb", TDES3_KEY, lambda k, d: cup_ecb_mac(lambda b: des(k, b), 8, d)),
        ("cup-ecb-sm4", SM4_KEY, lambda k, d: cup_ecb_mac(lambda b: sm4(k, b), 16, d)),
        ("x919", TDES2_KEY, x919_mac),
    ):
        for n in MAC_DATA_LENGTHS:
            d = data_of(n)
            out.append({"algo": algo, "key": key, "data": d.hex().upper(),
                        "mac": mac(bytes.fromhex(key), d)})
    return out


def pin_block_vectors():
    cases = [("123456789012345678", "123456"),  # the worked example of §3.4
             ("6222021234567890128", "1234"),
             ("4111111111111111", "000000"),
             ("6217001234567890123", "987654321098"),
             ("6222600910000000017", "24680"),
             ("1234567890123", "99999999")]
    out = []
    for pan, pin in cases:
        for algorithm, key, n, encrypt in (
            ("clear", None, 8, None),
            ("des", DES_KEY, 8, des),
            ("3des", TDES2_KEY, 8, des),
            ("3des", TDES3_KEY, 8, des),
            ("sm4", SM4_KEY, 16, sm4),
        ):
            clear = pin_block(pan, pin, n)
            block = clear if encrypt is None else encrypt(bytes.fromhex(key), clear)
            out.append({"pan": pan, "pin": pin, "algorithm": algorithm, "key": key,
                        "clear": clear.hex().upper(), "pin_block": block.hex().upper()})
    return out


def check_value_vectors():
    out = []
    for cipher, key in (("des", DES_KEY), ("3des-2key", TDES2_KEY), ("3des-3key", TDES3_KEY),
                        ("sm4", SM4_KEY)):
        k = bytes.fromhex(key)
        if cipher == "sm4":
            cv = check_value(lambda b: sm4(k, b), 16)
        else:
            cv = check_value(lambda b: des(k, b), 8)
        out.append({"family": "sm4" if cipher == "sm4" else "des", "cipher": cipher,
                    "key": key, "check_value": cv})
    return out


def key_wrap_vectors():
    """Working keys encrypted under a key-encryption key in ECB (§3.1)."""
    out = []
    for family, kek, key in (
        ("des", DES_KEY, "1A2B3C4D5E6F7081"),
        ("des", TDES2_KEY, "1A2B3C4D5E6F70818192A3B4C5D6E7F8"),
        ("des", TDES3_KEY, "1A2B3C4D5E6F70818192A3B4C5D6E7F80F1E2D3C4B5A6978"),
        ("des", TDES2_KEY, "1A2B3C4D5E6F7081"),
        ("sm4", SM4_KEY, "1A2B3C4D5E6F70818192A3B4C5D6E7F8"),
    ):
        encrypt = sm4 if family == "sm4" else des
        wrapped = encrypt(bytes.fromhex(kek), bytes.fromhex(key))
        out.append({"family": family, "kek": kek, "key": key, "wrapped": wrapped.hex().upper()})
    return out


def field62_vectors():
    """§3.2: each key encrypted under the TMK, then its check value (E_key(8 zero bytes)
    with the clear key as given). `mac` is the CUP ECB MAC of `mac_data` under the key a
    terminal MACs with: the MAK, except that a 16-byte MAK whose second half is zero is
    single-length (DES with the first half)."""
    tmk = bytes.fromhex(TMK)
    cases = [
        ("001", ["1A2B3C4D5E6F7081", "8192A3B4C5D6E7F8"]),
        ("003", ["1A2B3C4D5E6F70818192A3B4C5D6E7F8", "0F1E2D3C4B5A69788796A5B4C3D2E1F0"]),
        ("003", ["1A2B3C4D5E6F70818192A3B4C5D6E7F8", "8192A3B4C5D6E7F80000000000000000"]),
        ("004", ["1A2B3C4D5E6F70818192A3B4C5D6E7F8", "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
                 "F0E1D2C3B4A5968778695A4B3C2D1E0F"]),
    ]
    mac_data = data_of(33)
    out = []
    for layout, keys in cases:
        f62 = b""
        for key in keys:
            k = bytes.fromhex(key)
            f62 += des(tmk, k) + des(k, bytes(8))[:4]
        mak = bytes.fromhex(keys[1])
        if len(mak) == 16 and mak[8:] == bytes(8):
            mak = mak[:8]
        mac = cup_ecb_mac(lambda b: des(mak, b), 8, mac_data)
        out.append({"layout": layout, "tmk": TMK, "keys": keys, "field62": f62.hex().upper(),
                    "mac_data": mac_data.hex().upper(), "mac": mac})
    return out


def main():
    out = {
        "_about": "Known-answer vectors from testdata/gen_vectors.py (Python cryptography); "
                  "see testdata/README.md. Test keys only.",
        "mac": mac_vectors(),
        "pin_block": pin_block_vectors(),
        "check_value": check_value_vectors(),
        "key_wrap": key_wrap_vectors(),
        "field62": field62_vectors(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
