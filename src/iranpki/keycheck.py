"""Checks of a subscriber's public key before a CA certifies it, as the CA/Browser Forum
Baseline Requirements 6.1.1.3 and 6.1.6 ask of public CAs.

RSA (the arithmetic from the maintained ``badkeys`` package, which finds these in real keys):

* small prime factors (every prime up to 65537): a damaged or forged modulus;
* Fermat factorisation: primes so close that the modulus factors at once;
* ROCA (CVE-2017-15361): moduli from Infineon's flawed prime generator;
* a modulus with the 0-byte patterns that allow polynomial factoring, and a private exponent
  small enough for Wiener's attack;
* the public exponent: odd, at least 65537 and below 2^256 (BR 6.1.6).

EC: the point lies on its named curve and is not the point at infinity (SEC 1 3.2.2.1; done here
by the curve equation, not left to the parser that loaded the key).

Every key type, when the data is installed: the badkeys blocklists of known compromised keys,
among them the Debian OpenSSL weak keys (CVE-2008-0166). The lists are data that ``badkeys
--update-bl`` downloads on a connected machine; a CA machine reads them from the folder named by
``IRANPKI_BADKEYS_DIR`` (or badkeys' own cache). See docs/operator.md, "Weak keys".
"""

from __future__ import annotations

import hashlib
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .errors import ConfigError, WeakKeyError

__all__ = ["BADKEYS_DIR_ENV", "Blocklist", "KeyCheckReport", "check_public_key", "find_blocklist"]

BADKEYS_DIR_ENV = "IRANPKI_BADKEYS_DIR"
MIN_EXPONENT = 65537
MAX_EXPONENT = 1 << 256

# SEC 2 2.4.2, 2.5.1, 2.6.1: y^2 = x^3 + a*x + b over GF(p), a = -3.
_CURVES: dict[str, tuple[int, int]] = {
    "secp256r1": (0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
                  0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B),
    "secp384r1": (int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
                      "FFFFFFFF0000000000000000FFFFFFFF", 16),
                  int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
                      "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16)),
    "secp521r1": ((1 << 521) - 1,
                  int("0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
                      "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B50"
                      "3F00", 16)),
}


@dataclass(frozen=True)
class KeyCheckReport:
    """What was checked (``checks``, in order) for a key that passed them all."""

    checks: tuple[str, ...]
    blocklist: str | None = None  # the blocklist folder consulted, or None where none is installed


@dataclass
class Blocklist:
    """The badkeys blocklist (``blocklist.dat``): sorted 16-byte records, each the first 15
    bytes of the SHA-256 of a key's big-endian modulus (RSA) or x coordinate (EC) and a list id,
    named in ``badkeysdata.json``. Looked up by binary search over a memory map.

    badkeys' own lookup reads only a per-user cache folder and ends the process when the data is
    absent, which a CA cannot allow; this reader takes a folder and is checked against badkeys'
    lookup in the tests."""

    folder: Path
    _data: mmap.mmap | None = field(default=None, repr=False)
    _names: dict[int, str] = field(default_factory=dict, repr=False)

    def _open(self) -> mmap.mmap:
        if self._data is None:
            import json

            with open(self.folder / "blocklist.dat", "rb") as f:
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                meta = json.loads((self.folder / "badkeysdata.json").read_text("utf-8"))
                self._names = {int(b["id"]): str(b["name"]) for b in meta.get("blocklists", [])}
            except (OSError, ValueError, KeyError, TypeError):
                self._names = {}
        return self._data

    def lookup(self, value: int) -> str | None:
        """The name of the list that holds ``value``, or None."""
        data = self._open()
        digest = hashlib.sha256(value.to_bytes((value.bit_length() + 7) // 8, "big")).digest()[:15]
        lo, hi = 0, len(data) // 16 - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            here = data[mid * 16:mid * 16 + 15]
            if here == digest:
                list_id = data[mid * 16 + 15]
                return self._names.get(list_id, f"list {list_id}")
            if digest > here:
                lo = mid + 1
            else:
                hi = mid - 1
        return None


_BLOCKLISTS: dict[Path, Blocklist] = {}
#: Where the blocklist was looked for, what was found and when: a CA issuing thousands of
#: certificates a second looks again only every ``_LOOK_AGAIN`` seconds (or when the variables
#: change), so a list installed while it runs is used within a minute.
_FOUND: dict[tuple[str | None, ...], tuple[float, Blocklist | None]] = {}
_LOOK_AGAIN = 60.0


def find_blocklist(folder: str | os.PathLike[str] | None = None) -> Blocklist | None:
    """The installed blocklist: in ``folder``, else ``$IRANPKI_BADKEYS_DIR``, else badkeys' cache
    (``$XDG_CACHE_HOME/badkeys`` or ``~/.cache/badkeys``); None where there is none."""
    import time

    key = (str(folder) if folder else None, os.environ.get(BADKEYS_DIR_ENV), os.environ.get("XDG_CACHE_HOME"),
           os.environ.get("HOME"))
    seen = _FOUND.get(key)
    if seen is not None and time.monotonic() - seen[0] < _LOOK_AGAIN:
        return seen[1]
    found = _look_for_blocklist(folder)
    _FOUND[key] = (time.monotonic(), found)
    return found


def _look_for_blocklist(folder: str | os.PathLike[str] | None) -> Blocklist | None:
    candidates = [folder, os.environ.get(BADKEYS_DIR_ENV)]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    candidates.append(os.path.join(cache, "badkeys"))
    for c in candidates:
        if c and (Path(c) / "blocklist.dat").is_file():
            path = Path(c).resolve()
            return _BLOCKLISTS.setdefault(path, Blocklist(path))
    if folder or os.environ.get(BADKEYS_DIR_ENV):
        named = folder or os.environ[BADKEYS_DIR_ENV]
        # A set-up problem, not a verdict on anyone's key: a ConfigError.
        raise ConfigError(f"no weak-key blocklist in {named} (blocklist.dat missing); install it there "
                          "(badkeys --update-bl on a connected machine, then copy its cache folder) "
                          f"or unset {BADKEYS_DIR_ENV}")
    return None


def _refuse(check: str, reason: str) -> WeakKeyError:
    return WeakKeyError(f"the public key is weak and cannot be certified: {reason}. Generate a new key pair "
                        "on a sound device or library and submit a new request", check=check, detail=reason)


def _check_rsa(numbers: rsa.RSAPublicNumbers) -> list[str]:
    from badkeys.rsakeys import fermat, roca, rsainvalid, rsapoly, smalld, smallfactors

    n, e = numbers.n, numbers.e
    if e % 2 == 0 or not MIN_EXPONENT <= e < MAX_EXPONENT:
        raise _refuse("exponent", f"its public exponent {e} must be odd, at least {MIN_EXPONENT} and below 2^256 "
                                  "(CA/Browser Forum BR 6.1.6)")
    if rsainvalid(n, e=e):
        raise _refuse("rsainvalid", "its modulus and exponent are not a valid RSA key")
    if n % 2 == 0:
        raise _refuse("smallfactors", "its modulus is even")
    found = smallfactors(n)
    if found:
        raise _refuse("smallfactors", f"its modulus is divisible by the small prime {found['p']}")
    if fermat(n, e=e):
        raise _refuse("fermat", "its two primes are so close that Fermat's method factors the modulus at once")
    if roca(n):
        raise _refuse("roca", "it comes from the flawed Infineon prime generator (ROCA, CVE-2017-15361)")
    if rsapoly(n):
        raise _refuse("rsapoly", "its modulus has the zero-byte pattern that allows polynomial factoring")
    if smalld(n, e):
        raise _refuse("smalld", "its private exponent is small enough for Wiener's attack")
    return ["exponent", "rsainvalid", "smallfactors", "fermat", "roca", "rsapoly", "smalld"]


def _check_ec(key: ec.EllipticCurvePublicKey, numbers: ec.EllipticCurvePublicNumbers | None = None) -> list[str]:
    numbers = numbers or key.public_numbers()
    curve = _CURVES.get(key.curve.name)
    if curve is None:
        return []  # a curve no profile allows: the profile refuses it, with its own reason
    p, b = curve
    x, y = numbers.x, numbers.y
    if (x, y) == (0, 0) or not (0 <= x < p and 0 <= y < p):
        raise _refuse("ec-point", "its point is the point at infinity or outside the field")
    if (y * y - (x * x * x - 3 * x + b)) % p:
        raise _refuse("ec-point", f"its point is not on the curve {key.curve.name}")
    return ["ec-point"]


def check_public_key(key: PublicKeyTypes, *, blocklist: Blocklist | None = None,
                     blocklist_folder: str | os.PathLike[str] | None = None) -> KeyCheckReport:
    """Raise :class:`~iranpki.errors.WeakKeyError` with the reason if ``key`` is weak; else
    return what was checked. ``blocklist`` (or the folder to find it in) defaults to
    :func:`find_blocklist`."""
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        checks = _check_rsa(rsa_numbers)
        value = rsa_numbers.n
    elif isinstance(key, ec.EllipticCurvePublicKey):
        ec_numbers = key.public_numbers()
        checks = _check_ec(key, ec_numbers)
        value = ec_numbers.x
    else:
        return KeyCheckReport(())
    bl = blocklist or find_blocklist(blocklist_folder)
    if bl is not None:
        listed = bl.lookup(value)
        if listed:
            raise _refuse("blocklist", f"it is a known compromised key (badkeys blocklist {listed!r})")
        checks.append("blocklist")
    return KeyCheckReport(tuple(checks), str(bl.folder) if bl is not None else None)
