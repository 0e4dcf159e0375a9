"""The cases a device of each class must pass to be approved.

An approval certificate says the device was checked: every case of its class's set ran and
passed. A case the suite could not check here (``not_checked``: no SO PIN, no free slot) or
that the device does not offer (``not_applicable``) is no pass, so it blocks the approval of a
device whose class requires it; the report and the refusal name each such case and why.

The sets, by the role each class of device plays in the national PKI:

* every class: the token's identity, log-in and PIN handling, RSA-2048 and P-256 key generation
  and signing, keys that stay sensitive and never extractable (the Tookan attacks among them),
  signatures verified and tampered ones refused (Project Wycheproof's vectors for RSA PKCS#1
  v1.5 and PSS, ECDSA P-256), random numbers, and every stability case;
* ``smartcard`` and ``usb-token`` (a citizen's or an RA officer's token): the PIN locks after
  wrong tries (SEC-PIN-RETRY-LOCK), since a lost token must not give way to guessing; and the
  signing rates of their class;
* ``hsm`` (the keys of CAs, OCSP responders and time-stamp authorities): RSA-3072/4096 and
  P-384 as well, AES key wrapping, and the performance of every mechanism a CA, an OCSP
  responder and a TSA use.

Patterns end in ``*`` to take every case whose id begins so.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEVICE_CLASSES", "REQUIRED", "required_cases", "required_shortfall"]

DEVICE_CLASSES = ("hsm", "usb-token", "smartcard")

_EVERY_CLASS = (
    "FUNC-INFO-LIBRARY", "FUNC-INFO-TOKEN", "FUNC-INFO-MECHANISM-LIST",
    "FUNC-LOGIN-*", "FUNC-SETPIN",
    "FUNC-KEYGEN-RSA-2048", "FUNC-KEYGEN-EC-P256",
    "FUNC-SIGN-RSA2048-SHA256-PKCS1", "FUNC-SIGN-ECDSA-P256-HOSTHASH-SHA256",
    "SEC-SENSITIVE-*", "SEC-STICKY-*", "SEC-VERIFY-REJECTS-*",
    "SEC-WYCHEPROOF-ECDSA-P256", "SEC-WYCHEPROOF-RSA-PKCS1-2048-SHA256", "SEC-WYCHEPROOF-RSA-PSS-2048-SHA256",
    "SEC-RNG-*",
    "STAB-*",
)

REQUIRED: dict[str, tuple[str, ...]] = {
    "smartcard": (*_EVERY_CLASS, "SEC-PIN-RETRY-LOCK", "PERF-SIGN-RSA2048-PKCS1", "PERF-SIGN-ECDSA-P256"),
    "usb-token": (*_EVERY_CLASS, "SEC-PIN-RETRY-LOCK", "PERF-SIGN-RSA2048-PKCS1", "PERF-SIGN-ECDSA-P256"),
    "hsm": (*_EVERY_CLASS, "FUNC-KEYGEN-RSA-3072", "FUNC-KEYGEN-RSA-4096", "FUNC-KEYGEN-EC-P384",
            "SEC-WYCHEPROOF-ECDSA-P384", "SEC-WYCHEPROOF-RSA-PKCS1-3072-SHA256",
            "SEC-WYCHEPROOF-RSA-PKCS1-4096-SHA512", "PERF-SIGN-*", "PERF-VERIFY-*", "PERF-DIGEST-ROUNDTRIP"),
}


def required_cases(device_class: str, case_ids: Iterable[str]) -> list[str]:
    """The ids among ``case_ids`` (the suite's registry) that a device of ``device_class`` must pass,
    in registry order. Raises ValueError for an unknown class."""
    if device_class not in REQUIRED:
        raise ValueError(f"device class {device_class!r} is not one the lab approves; must be one of "
                         f"{', '.join(DEVICE_CLASSES)}")
    patterns = REQUIRED[device_class]
    return [i for i in case_ids if any(fnmatch.fnmatchcase(i, p) for p in patterns)]


def required_shortfall(device_class: str, results: Iterable[Mapping[str, Any]],
                       case_ids: Iterable[str]) -> tuple[int, list[tuple[str, str, str]]]:
    """How a report stands against its class's set: the number of required cases, and each one
    that is not a pass as ``(id, verdict, why)``, the verdict ``not run`` for a case missing
    from the report. ``results`` are the report's result rows (``id``, ``verdict``, ``detail``);
    ``case_ids`` the suite's registry. Raises ValueError for an unknown class."""
    wanted = required_cases(device_class, case_ids)
    got = {str(r.get("id")): r for r in results}
    short = []
    for case_id in wanted:
        r = got.get(case_id)
        if r is None:
            short.append((case_id, "not run", "the run did not select it"))
            continue
        verdict = r.get("verdict")
        verdict = str(getattr(verdict, "value", verdict))
        if verdict != "pass":
            short.append((case_id, verdict, str(r.get("detail", ""))))
    return len(wanted), short
