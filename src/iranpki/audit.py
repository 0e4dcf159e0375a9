"""The tamper-evident audit log: every audit event a leaf of an append-only Merkle tree.

The tree has the shape of RFC 9162 (Certificate Transparency 2.0), section 2.1: a leaf's hash is
SHA-256(0x00 || data), a node's SHA-256(0x01 || left || right), and a tree of n leaves splits at
the largest power of two below n. A leaf's data is the event as the store recorded it, in the
canonical JSON of RFC 8785 (``rfc8785``): its sequence number, time, actor, event, subject and
details. The store writes the leaf's hash in the transaction that records the event
(:meth:`iranpki.store.Store.add_certificate` and every other change), so an event and its leaf
exist together or not at all.

A **checkpoint** fixes the tree at a size: the size, the root hash and the time, as a signed
note in the C2SP formats (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), signed with the audit
key (ECDSA P-256 or P-384 on the CA's token, signature type 0x02 with SHA-256). Whoever keeps a
checkpoint can later check, without the database, that the log grew append-only since
(a consistency proof) and that an event is in it (an inclusion proof).

:func:`verify` reads every event and finds what changed: an event edited, deleted, inserted,
reordered or cut off, at the first bad position when the stored leaves say where, or between the
last good checkpoint and the first bad one when someone rewrote the leaves too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import rfc8785
from json.encoder import encode_basestring  # type: ignore[attr-defined] - the C encoder of a JSON string

from .errors import IranPkiError

__all__ = [
    "AuditProblem",
    "Checkpoint",
    "ProofError",
    "Subtrees",
    "Verification",
    "check_consistency",
    "check_inclusion",
    "consistency_proof",
    "inclusion_proof",
    "leaf_data",
    "leaf_hash",
    "make_checkpoint",
    "open_checkpoint",
    "root_of",
    "verifier_key",
    "verify",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(IranPkiError):
    """A proof or checkpoint that does not hold (or cannot be read)."""


# ---- the tree -----------------------------------------------------------------------------------

def leaf_data(seq: int, at: str, actor: str, event: str, subject: str, details: str) -> bytes:
    """The leaf's data: the event as stored (``at`` and ``details`` as the store's text), in
    RFC 8785 canonical JSON.

    Events hold strings, integers, booleans, nulls, lists and objects with keys in the Basic
    Multilingual Plane; for those, Python's JSON encoder with sorted keys and no spaces writes
    exactly the RFC 8785 form, at a third of the cost of the general canonicaliser (the tests
    compare the two on generated events). Anything else (a float, a key beyond the BMP, whose
    UTF-16 order differs) goes to ``rfc8785`` itself."""
    parsed = json.loads(details)
    fields = (actor, at, event, subject)
    if _plain(parsed) and not any(_SURROGATE.search(v) for v in fields) and -_MAX_EXACT <= seq <= _MAX_EXACT:
        q = _quote
        return (f'{{"actor":{q(actor)},"at":{q(at)},"details":{_COMPACT.encode(parsed)},"event":{q(event)},'
                f'"seq":{seq},"subject":{q(subject)}}}').encode("utf-8")
    return rfc8785.dumps({"seq": seq, "at": at, "actor": actor, "event": event, "subject": subject,
                          "details": parsed})


_MAX_EXACT = 2**53 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[^\u0000-\uffff]")
_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_quote = encode_basestring


def _plain(value: object) -> bool:
    """Whether Python's encoder writes ``value`` as RFC 8785 does (see :func:`leaf_data`)."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_MAX_EXACT <= value <= _MAX_EXACT
    if isinstance(value, str):
        return _SURROGATE.search(value) is None
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _ASTRAL.search(k) is None and _plain(k) and _plain(v)
                   for k, v in value.items())
    return False


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class _Frontier:
    """The tree's right edge as leaves are added: the roots of its perfect subtrees, largest
    first (at most log2(n) hashes: the memory of a pass over any number of leaves)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def add(self, leaf: bytes) -> None:
        self.size += 1
        width, h = 1, leaf
        while self._stack and self._stack[-1][0] == width:
            h = _node(self._stack.pop()[1], h)
            width *= 2
        self._stack.append((width, h))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = _node(left, h)
        return h


def root_of(leaves: Iterable[bytes]) -> bytes:
    """The root hash of the tree of these leaf hashes (RFC 9162 MTH)."""
    frontier = _Frontier()
    for leaf in leaves:
        frontier.add(leaf)
    return frontier.root()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Subtrees:
    """Subtree hashes of a list of leaves, each computed once (a proof, or an export of many,
    touches each subtree at most once: O(n) in all, not O(n) per proof)."""

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self.leaves[lo]
        found = self._memo.get((lo, hi))
        if found is None:
            k = _split(hi - lo)
            found = self._memo[(lo, hi)] = _node(self.mth(lo, lo + k), self.mth(lo + k, hi))
        return found


def inclusion_proof(index: int, leaves: Sequence[bytes], tree: Subtrees | None = None) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]): the audit path of leaf ``index`` in the tree of ``leaves``
    (``tree``: the same leaves' subtree hashes, kept between the proofs of an export)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"event {index + 1} is not in a log of {n} events")
    tree = tree or Subtrees(leaves)

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < k:
            return path(m, lo, lo + k) + [tree.mth(lo + k, hi)]
        return path(m - k, lo + k, hi) + [tree.mth(lo, lo + k)]

    return path(index, 0, n)


def consistency_proof(old: int, leaves: Sequence[bytes], tree: Subtrees | None = None) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]): that the tree of the first ``old`` leaves is a prefix."""
    n = len(leaves)
    if not 0 < old <= n:
        raise ProofError(f"a consistency proof goes from a size of 1 to {n}; {old} was asked")
    tree = tree or Subtrees(leaves)

    def subproof(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        if m == hi - lo:
            return [] if whole else [tree.mth(lo, hi)]
        k = _split(hi - lo)
        if m <= k:
            return subproof(m, lo, lo + k, whole) + [tree.mth(lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [tree.mth(lo, lo + k)]

    return subproof(old, 0, n, True)


def check_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2: raise ProofError unless ``leaf`` is leaf ``index`` of the tree of
    ``size`` leaves with ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root of the tree of {size}")


def check_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2: raise ProofError unless the tree of ``old`` leaves with ``old_root`` is a
    prefix of the tree of ``new`` leaves with ``new_root``."""
    if not 0 < old <= new:
        raise ProofError(f"sizes {old} and {new}: the old must be at least 1 and at most the new")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError(f"two trees of {old} leaves with different roots: the log was rewritten")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError(f"the log of {new} events does not extend the log of {old} events the old checkpoint "
                         "fixed: it was rewritten, not only appended to")


# ---- checkpoints (signed notes) -----------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log's origin, size, root hash and time, and its note text."""

    origin: str
    size: int
    root: bytes
    at: datetime | None
    note: str = field(repr=False)


def _key_id(spki: bytes) -> bytes:
    # c2sp.org/signed-note, type 0x02 (ECDSA): the truncated SHA-256 of the DER public key.
    return hashlib.sha256(spki).digest()[:4]


def _spki(public_key) -> bytes:  # noqa: ANN001 - an EC public key
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in ("secp256r1",
                                                                                              "secp384r1"):
        raise ProofError("the audit key signs checkpoints as c2sp.org/signed-note type 0x02: an ECDSA P-256 or "
                         "P-384 key (make one: iranpki key generate --algorithm p256 --label audit)")
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def verifier_key(name: str, public_key) -> str:  # noqa: ANN001
    """The verifier key an inspector keeps: ``name+keyid+base64(0x02 || SPKI)``."""
    spki = _spki(public_key)
    encoded = base64.b64encode(b"\x02" + spki).decode("ascii")
    return f"{name}+{_key_id(spki).hex()}+{encoded}"


def make_checkpoint(origin: str, size: int, root: bytes, signer, *, name: str | None = None,  # noqa: ANN001
                    at: datetime | None = None) -> str:
    """The signed note of the tree at ``size`` with ``root``, signed by ``signer`` (an
    :class:`iranpki.keys.Signer` with an ECDSA key) under the key name ``name`` (default the
    origin)."""
    from .keys.base import SignatureScheme

    name = name or origin
    if any(c.isspace() or c == "+" for c in name) or not name:
        raise ProofError(f"key name {name!r}: non-empty, with no spaces or '+'")
    if "\n" in origin or not origin:
        raise ProofError(f"origin {origin!r}: one non-empty line")
    moment = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\ntime {moment:%Y-%m-%dT%H:%M:%SZ}\n"
    spki = _spki(signer.public_key)
    signature = signer.sign(body.encode("utf-8"), SignatureScheme.parse("sha256"))
    return f"{body}\n\u2014 {name} {base64.b64encode(_key_id(spki) + signature).decode('ascii')}\n"


def open_checkpoint(note: str, vkey: str) -> Checkpoint:
    """The checkpoint of a signed note, if the verifier key ``vkey`` signed it; else ProofError."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        name, key_id_hex, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        key = load_der_public_key(raw[1:])
    except (ValueError, TypeError):
        raise ProofError(f"the verifier key {vkey[:60]!r} is not name+keyid+base64 key") from None
    if raw[:1] != b"\x02" or not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProofError("the verifier key is not an ECDSA key (signed-note type 0x02)")
    if "\n\n" not in note:
        raise ProofError("not a signed note: no blank line before the signatures")
    body, _, signatures = note.rpartition("\n\n")
    body += "\n"
    found = False
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise ProofError(f"the signature line of {name} is not base64") from None
        if blob[:4].hex() != key_id_hex:
            continue
        try:
            key.verify(blob[4:], body.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ProofError(f"the checkpoint's signature by {name} does not verify: the note was changed") from None
        found = True
        break
    if not found:
        raise ProofError(f"the checkpoint carries no signature by the key {name}+{key_id_hex}")
    lines = body.split("\n")
    try:
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError):
        raise ProofError("the checkpoint's text is not origin, size and root hash") from None
    at = None
    for extra in lines[3:]:
        if extra.startswith("time "):
            at = datetime.strptime(extra[5:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    if len(root) != 32 or size < 0:
        raise ProofError("the checkpoint's root hash is not 32 bytes, or its size is negative")
    return Checkpoint(origin, size, root, at, note)


# ---- verification of a store's log --------------------------------------------------------------

@dataclass(frozen=True)
class AuditProblem:
    """What is wrong, and the first event (its sequence number, from 1) where it shows."""

    position: int
    what: str


@dataclass
class Verification:
    events: int = 0
    root: bytes = EMPTY_ROOT
    checkpoints: list[int] = field(default_factory=list)
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> int | None:
        return min((p.position for p in self.problems), default=None)


def verify(rows: Iterator[tuple[int, str, str, str, str, str, bytes | None]], checkpoints: Sequence[Checkpoint],
           *, leaves: int | None = None) -> Verification:
    """Recompute the tree from the events (``rows``: seq, at, actor, event, subject, details and
    the leaf hash stored with it, in seq order) and check it against each checkpoint.

    Finds an event edited (its data no longer gives the leaf stored with it), deleted (a gap in
    the sequence), inserted or reordered (a sequence number out of place), a log cut short of a
    checkpoint, leaves beyond the events (``leaves``: how many the store holds), and a rewrite of
    events and leaves together (a checkpoint's root differs: the first bad event lies after the
    last checkpoint that holds)."""
    result = Verification()
    frontier = _Frontier()
    due = sorted(checkpoints, key=lambda c: c.size)
    last_good = 0
    expected = 1
    while due and due[0].size == 0:  # a checkpoint of the empty log
        cp = due.pop(0)
        if cp.root != EMPTY_ROOT:
            result.problems.append(AuditProblem(1, "the checkpoint of size 0 does not hold: its root is not the "
                                                   "empty tree's"))
        else:
            result.checkpoints.append(0)
    for seq, at, actor, event, subject, details, stored in rows:
        if seq != expected:
            what = (f"event {expected} is missing (deleted), the next is {seq}" if seq > expected else
                    f"event {seq} is out of place after {expected - 1} (inserted or reordered)")
            result.problems.append(AuditProblem(expected if seq > expected else seq, what))
            break
        try:
            leaf = leaf_hash(leaf_data(seq, at, actor, event, subject, details))
        except (ValueError, TypeError, rfc8785.CanonicalizationError):
            result.problems.append(AuditProblem(seq, f"event {seq} was changed after it was recorded (its details "
                                                     "are no longer the JSON iranpki writes)"))
            break
        if stored is None:
            result.problems.append(AuditProblem(seq, f"event {seq} has no leaf in the tree (added outside iranpki)"))
            break
        if stored != leaf:
            result.problems.append(AuditProblem(seq, f"event {seq} was changed after it was recorded (its data no "
                                                     "longer gives the leaf recorded with it)"))
            break
        frontier.add(leaf)
        expected += 1
        while due and due[0].size == frontier.size:
            cp = due.pop(0)
            if frontier.root() != cp.root:
                result.problems.append(AuditProblem(
                    last_good + 1, f"the checkpoint of size {cp.size} does not hold: events and leaves were rewritten "
                                   f"together; the first bad event is between {last_good + 1} and {cp.size}"))
                break
            result.checkpoints.append(cp.size)
            last_good = cp.size
        if result.problems:
            break
    result.events = frontier.size
    result.root = frontier.root()
    if not result.problems:
        if due:
            result.problems.append(AuditProblem(frontier.size + 1, f"the log ends at event {frontier.size}, but a "
                                                                   f"checkpoint covers {due[0].size}: events were cut off"))
        elif leaves is not None and leaves != frontier.size:
            result.problems.append(AuditProblem(frontier.size + 1, f"the tree has {leaves} leaves for {frontier.size} "
                                                                   "events: events were cut off"))
    return result


# ---- over a store ---------------------------------------------------------------------------------

VKEY_META = "service.audit.vkey"


def verify_store(store, vkey: str | None = None, notes: Sequence[str] = ()) -> Verification:  # noqa: ANN001
    """Verify the store's log against its kept checkpoints and ``notes`` (checkpoints an
    inspector kept), each opened with ``vkey`` (default: the audit key the store's checkpoints
    were made with). A checkpoint whose signature fails is a problem too."""
    vkey = vkey or store.get_meta(VKEY_META)
    opened: list[Checkpoint] = []
    problems: list[AuditProblem] = []
    texts = [n for _, _, _, n in store.checkpoints()] + list(notes)
    if texts and not vkey:
        problems.append(AuditProblem(0, "the store has checkpoints but no audit verifier key; give --vkey"))
    for text in dict.fromkeys(texts) if vkey else ():  # the inspector's copy of a kept one: once
        try:
            opened.append(open_checkpoint(text, vkey))
        except ProofError as exc:
            problems.append(AuditProblem(0, f"a checkpoint does not verify: {exc}"))
    # One snapshot: events written while this runs (a busy CA) are not read, and not counted.
    events, leaves = store.audit_size()
    result = verify(_until(store.audit_rows(), events), opened, leaves=leaves)
    result.problems[:0] = problems
    return result


def _until(rows, last: int):  # noqa: ANN001, ANN202
    """The rows up to the ``last`` event of the snapshot (an edit that leaves gaps shows in verify)."""
    for r in rows:
        if r[0] > last:
            return
        yield r


def checkpoint(store, signer, origin: str, *, name: str | None = None) -> str:  # noqa: ANN001
    """Verify the log, then sign and keep a checkpoint of it as it is now; the signed note. A log
    that does not verify is not signed over."""
    checked = verify_store(store)
    if not checked.ok:
        raise ProofError("the audit log does not verify, so no checkpoint is signed over it: "
                         + "; ".join(p.what for p in checked.problems))
    vkey = verifier_key(name or origin, signer.public_key)
    known = store.get_meta(VKEY_META)
    if known and known != vkey:
        raise ProofError("this store's checkpoints are signed by another audit key (or under another name); "
                         f"its verifier key is {known}")
    note = make_checkpoint(origin, checked.events, checked.root, signer, name=name)
    opened = open_checkpoint(note, vkey)
    if not known:
        store.put_meta(VKEY_META, vkey)
    store.add_checkpoint(opened.size, opened.root, opened.at or datetime.now(timezone.utc), note)
    return note


def prove(store, seq: int, size: int | None = None) -> dict:  # noqa: ANN001
    """The inclusion proof of event ``seq`` in the tree of ``size`` events (default: all), with
    the event's leaf data: what `iranpki audit check-proof` checks offline."""
    leaves = store.audit_leaves(size)
    if size is not None and len(leaves) != size:
        raise ProofError(f"the log has {len(leaves)} events, fewer than {size}")
    row = next(store.audit_rows(after=seq - 1, batch=1), None)
    if row is None or row[0] != seq:
        raise ProofError(f"no event {seq} in the log")
    data = leaf_data(*row[:6])
    proof = inclusion_proof(seq - 1, leaves)
    return {"type": "inclusion", "seq": seq, "size": len(leaves), "leaf_data": data.decode("utf-8"),
            "path": [p.hex() for p in proof], "root": root_of(leaves).hex()}


def prove_consistency(store, old: int, new: int | None = None) -> dict:  # noqa: ANN001
    leaves = store.audit_leaves(new)
    if new is not None and len(leaves) != new:
        raise ProofError(f"the log has {len(leaves)} events, fewer than {new}")
    return {"type": "consistency", "old": old, "new": len(leaves), "old_root": root_of(leaves[:old]).hex(),
            "new_root": root_of(leaves).hex(), "path": [p.hex() for p in consistency_proof(old, leaves)]}


def check_proof(proof: dict, vkey: str, note: str, old_note: str | None = None) -> str:
    """Check a proof offline against a checkpoint signed by ``vkey`` (and, for a consistency
    proof, the older checkpoint ``old_note``); what it shows, or ProofError."""
    cp = open_checkpoint(note, vkey)
    path = [bytes.fromhex(p) for p in proof.get("path", [])]
    if proof.get("type") == "inclusion":
        if proof["size"] != cp.size:
            raise ProofError(f"the proof is for a log of {proof['size']} events; the checkpoint fixes {cp.size}")
        data = proof["leaf_data"].encode("utf-8")
        if json.loads(data).get("seq") != proof["seq"]:
            raise ProofError("the event's data names another sequence number than the proof")
        check_inclusion(proof["seq"] - 1, cp.size, leaf_hash(data), path, cp.root)
        return f"event {proof['seq']} is in the log of {cp.size} events the checkpoint signed ({cp.origin})"
    if proof.get("type") == "consistency":
        if old_note is None:
            raise ProofError("a consistency proof is checked against the old checkpoint too: give it")
        old = open_checkpoint(old_note, vkey)
        if (old.size, cp.size) != (proof["old"], proof["new"]):
            raise ProofError(f"the proof goes from {proof['old']} to {proof['new']} events; the checkpoints fix "
                             f"{old.size} and {cp.size}")
        check_consistency(old.size, cp.size, old.root, cp.root, path)
        return f"the log of {cp.size} events extends the log of {old.size} events: it was only appended to"
    raise ProofError(f"not a proof iranpki makes: type {proof.get('type')!r}")
