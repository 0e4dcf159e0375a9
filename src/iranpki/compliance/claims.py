"""The values a CPS states, read from its text and tables, and compared with the national CP.

What is read, and from which RFC 3647 section, is :data:`CLAIM_NAMES`; the unit of each value
is :data:`CLAIM_UNITS`. :func:`extract_claims` reads them for one assurance level;
:func:`check_claims` compares them with the CP of that level. Both return findings, never raise
for what a CPS says (docs/architecture.md, conventions).

How the reader decides (the rules a CPS author can rely on):

- **Durations** are an integer (ASCII or Persian digits) and a unit: minute, hour, day, week,
  month, year, or دقیقه، ساعت، روز، هفته، ماه، سال. A year is 365 days and a month a twelfth of
  it, so "2 years" is 730 days, "12 months" is 1 year and "39 months" is 1187 days (the
  CA/Browser Forum's code-signing limit). Converting to a coarser unit rounds towards the
  stricter reading: up for a limit the CP caps (validity, CRL and OCSP intervals, audit
  interval), down for a period the CP sets a floor on (retention).
- **Per level**: a table row whose "Level" column names the level, or a sentence naming it
  ("level 2", "levels 1-3", "سطح ۲"), wins over a value given for every level. A sentence that
  names several levels is cut at commas, semicolons and colons, and each clause belongs to the
  levels it names (or, naming none, to those of the clause before it). Within the same rank a
  table wins over sentences. "FIPS 140-2 level 3" and "security level 3" are not assurance levels.
- **Several durations in one section** (4.9.7, 4.9.10, 8.1): each duration belongs to the
  keyword nearest to it in its sentence ("nextUpdate" or "valid", "every", "of a revocation").
  Where one claim is stated more than once, the loosest value counts (the longest interval, the
  longest retention, the smallest key size), because that is what the CA allows itself.
- **Identity proofing and key storage** are the CP's ``phrases``. Words negated next to them
  ("no", "not", "without", "بدون", ...) do not count. Identity proofing is the *strongest*
  method named for the level (online registration and inquiries usually come before the visit
  that proves identity). Key storage is the *weakest* store named for the level, because the
  CP's ``keys.storage`` is the least protected store a level accepts; sentences about the CA's
  own keys ("CA", "root", "OCSP", "TSA" without "subscriber") are left out.
- **References**: where a section states nothing readable and refers elsewhere ("see Section
  7.2", "as described in section 7.1"), the sections it names are read, after its own text
  (real CPSs keep the CRL and certificate profiles in section 7 and point there from 4.9.7,
  6.3.2 and 7.1.6). Kind names may be plural or short ("Subordinate CAs", "Sub-CA", "ICA").
- **4.9.5**: a duration nearest to words about investigating, acknowledging or answering a
  report says when the CA starts, not how soon it revokes, and is not read as the delay.
- **Hashes** (7.1.3): SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 and MD5 as written in algorithm
  names ("sha256WithRSAEncryption", "ecdsa-with-SHA384"); SHA-1 and MD5 in a sentence that
  negates them ("SHA-1 is not used") are not claims.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

from ..policy import CERTIFICATE_KINDS, AssuranceLevel, CertificatePolicy
from .document import normalise_digits
from .model import Claim, CpsDocument, Finding, Severity, Stage

__all__ = ["CLAIM_NAMES", "CLAIM_UNITS", "UNITS", "check_claims", "convert_duration", "extract_claims",
           "parse_duration"]

#: Each claim the reader knows, with the RFC 3647 sections it is read from.
CLAIM_NAMES: dict[str, tuple[str, ...]] = {
    "validity_days": ("6.3.2",),  # one claim per certificate kind (Claim.kind)
    "rsa_min_bits": ("6.1.5",),
    "ec_curves": ("6.1.5",),
    "hashes": ("7.1.3",),
    "crl_next_update_hours": ("4.9.7",),
    "crl_publish_within_hours": ("4.9.7",),
    "revocation_processing_hours": ("4.9.5",),
    "ocsp_validity_hours": ("4.9.10",),
    "identity_proofing": ("3.2.3",),
    "key_storage": ("6.2.1",),
    "audit_log_retention_years": ("5.4.3",),
    "archive_retention_years": ("5.5.2",),
    "compliance_audit_months": ("8.1",),
    "policy_oids": ("7.1.6",),
}

#: The unit of each claim's value ("names" for tuples, "method" for a method id).
CLAIM_UNITS: dict[str, str] = {
    "validity_days": "day", "rsa_min_bits": "bit", "ec_curves": "names", "hashes": "names",
    "crl_next_update_hours": "hour", "crl_publish_within_hours": "hour", "revocation_processing_hours": "hour",
    "ocsp_validity_hours": "hour", "identity_proofing": "method", "key_storage": "method",
    "audit_log_retention_years": "year", "archive_retention_years": "year", "compliance_audit_months": "month",
    "policy_oids": "names",
}

# ---------------------------------------------------------------------------------------------
# Durations

_T = TypeVar("_T")

#: Each unit in minutes. A year is 365 days and a month a twelfth of a year (module docstring).
UNITS: dict[str, Fraction] = {
    "minute": Fraction(1), "hour": Fraction(60), "day": Fraction(1440), "week": Fraction(10080),
    "month": Fraction(365 * 1440, 12), "year": Fraction(365 * 1440),
}
_UNIT_WORDS: tuple[tuple[str, str], ...] = (
    (r"minutes?|mins?\b|دقیقه", "minute"), (r"hours?|hrs?\b|ساعت", "hour"), (r"days?|روز", "day"),
    (r"weeks?|هفته", "week"), (r"months?|ماه", "month"), (r"years?|yrs?\b|سال", "year"),
)
# \d matches Persian and Arabic-Indic digits too, and int() reads them. The look-arounds keep
# the numbers of OIDs, versions and section numbers ("4.9.7", "140-2") out.
_DURATION = re.compile(
    r"(?<![\w.\-/])(\d{1,6})(?![.,/]\d)(?:\s*-\s*|\s+|\u200c)?"
    r"(?:(?:business|working|calendar|consecutive|full)\s+)?("
    + "|".join(f"(?:{p})" for p, _ in _UNIT_WORDS) + r")",
    re.IGNORECASE)


def _unit_of(word: str) -> str:
    for pattern, unit in _UNIT_WORDS:
        if re.fullmatch(pattern, word, re.IGNORECASE):
            return unit
    raise AssertionError(word)  # the regex only matches these words


def parse_duration(text: str) -> list[tuple[int, str, tuple[int, int]]]:
    """Every duration in ``text``: ``(value, unit, (start, end))``, unit one of :data:`UNITS`.

    >>> parse_duration("nextUpdate at most 7 days, ۲۴ ساعت")
    [(7, 'day', (19, 25)), (24, 'hour', (27, 34))]
    """
    return [(int(m.group(1)), _unit_of(m.group(2)), m.span()) for m in _DURATION.finditer(text)]


def convert_duration(value: int, unit: str, target: str, *, round_up: bool = True) -> int:
    """``value`` ``unit`` in ``target`` units, rounded up (a cap) or down (a floor)."""
    exact = value * UNITS[unit] / UNITS[target]
    return math.ceil(exact) if round_up else math.floor(exact)


# ---------------------------------------------------------------------------------------------
# Sentences, levels, tables


@dataclass(frozen=True)
class _Piece:
    """A sentence, a clause of one, or a table row (cells prefixed with their headers)."""

    text: str
    levels: frozenset[int] | None  # None: every level
    table: bool
    sentence: str  # the whole sentence (or row) the piece is part of, for context
    caption: str = ""  # a table row's: the un-numbered heading above its table


_NEGATION = re.compile(r"\b(?:not|never|no|nor|without|prohibited|forbidden|disallowed|refused|rejected|"
                       r"excluded)\b|n't|بدون|عدم|ممنوع|نمی|نیست", re.IGNORECASE)
_LEVEL_MENTION = re.compile(
    r"\blevels?\s*(\d(?:\s*(?:-|–|to|,|and|or|&|/)\s*\d)*)(?!\d)"
    r"|سطح(?:\u200c?های)?\s*(?:اطمینان\s*)?(\d(?:\s*(?:-|–|تا|،|,|و)\s*\d)*)(?!\d)", re.IGNORECASE)
# Levels that are not assurance levels: they are masked before looking for level mentions.
_NOT_ASSURANCE = re.compile(r"fips(?:\s+pub)?\s*140-[123]\s*,?\s*(?:security\s+)?level\s*\d|security\s+level\s*\d",
                            re.IGNORECASE)


_REFERENCE = re.compile(r"(?:\b(?:as|like|than|same as)|مانند|همانند|مثل)\s*$", re.IGNORECASE)


def _level_set(spec: str) -> frozenset[int] | None:
    """Levels named by a Level cell or mention: "2", "1-4", "1, 2", "1 to 3"; None for "all"."""
    spec = normalise_digits(spec)
    levels: set[int] = set()
    for a, b in re.findall(r"(\d)\s*(?:-|–|to|تا)\s*(\d)", spec):
        levels.update(range(int(a), int(b) + 1))
    levels.update(int(d) for d in re.findall(r"\d", spec))
    return frozenset(levels) if levels else None


def _mentions(text: str) -> list[tuple[int, frozenset[int]]]:
    masked = _NOT_ASSURANCE.sub(lambda m: " " * len(m.group()), normalise_digits(text))
    out = []
    for m in _LEVEL_MENTION.finditer(masked):
        if _REFERENCE.search(masked[:m.start()]):
            continue  # "as level 2, with ..." refers to another level, it does not scope the clause
        levels = _level_set(m.group(1) or m.group(2))
        if levels:
            out.append((m.start(), levels))
    return out


def _clauses(sentence: str) -> list[_Piece]:
    """A sentence cut into clauses, each with the levels it names, or inherits from the clause
    before it; clauses before the first level mention are for every level."""
    if not _mentions(sentence):
        return [_Piece(sentence, None, False, sentence)]
    parts = [p for p in re.split(r"\s*[,،;:()]\s*|\s+(?:while|whereas)\s+", sentence) if p.strip()]
    pieces: list[_Piece] = []
    current: frozenset[int] | None = None
    for part in parts:
        named = _mentions(part)
        current = frozenset().union(*(lv for _, lv in named)) if named else current
        pieces.append(_Piece(part, current, False, sentence))
    return pieces


def _strip_markdown(line: str) -> str:
    return re.sub(r"[*_`]+", "", re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line))


def _paragraphs(text: str) -> list[str]:
    """Paragraphs and list items, their lines joined; table lines left out (they are read from
    Section.tables). A list item under a lead-in that ends with a colon carries the lead-in
    ("For RSA key pairs, the CA ensures that: the modulus size is at least 2048 bits"), so that
    what the item says is read with what it is about."""
    out: list[str] = []
    joining = False
    lead = ""
    item = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("|", "#", "<")):
            # Tables are read from Section.tables; raw HTML (a <table> pasted from a word processor)
            # is not read at all: its words, cell by cell, would be taken for sentences.
            joining = False
            continue
        starts_item = re.match(r"(?:[-*+]|\d+[.)])\s+", stripped) is not None
        if joining and not starts_item:
            out[-1] += " " + _strip_markdown(stripped)
        elif starts_item:
            out.append((lead + " " if lead else "") + _strip_markdown(stripped))
            item = True
        else:
            out.append(_strip_markdown(stripped))
            item = False
        if not item:
            lead = out[-1] if out[-1].rstrip().endswith(":") else ""
        joining = True
    return out


def _pieces(doc: CpsDocument, numbers: Iterable[str], only: Iterable[str] = ()) -> list[_Piece]:
    """Table rows first, then the clauses of every sentence, of the sections and their
    subsections (of the sections in ``only``, their own text alone)."""
    rows: list[_Piece] = []
    sentences: list[_Piece] = []
    own_only = set(only)
    for number in [*numbers, *own_only]:
        for section in ([doc.get(number)] if number in own_only else doc.subtree(number)):
            if section is None:
                continue
            for i, table in enumerate(section.tables):
                rows.extend(_table_rows(table, section.captions[i] if i < len(section.captions) else ""))
            for paragraph in _paragraphs(section.text):
                for sentence in re.split(r"(?<=[.;!?؛])\s+", paragraph):
                    if sentence.strip():
                        sentences.extend(_clauses(sentence.strip()))
    return rows + sentences


def _table_rows(table: list[list[str]], caption: str = "") -> list[_Piece]:
    if len(table) < 2:
        return []
    header = [h.strip() for h in table[0]]
    level_cols = [i for i, h in enumerate(header) if re.search(r"\blevels?\b|سطح", h, re.IGNORECASE)]
    out = []
    for row in table[1:]:
        levels = None
        for i in level_cols:
            if i < len(row):
                levels = _level_set(row[i]) if levels is None else levels | (_level_set(row[i]) or frozenset())
        cells = [f"{header[i] if i < len(header) else ''}: {_strip_markdown(c.strip())}"
                 for i, c in enumerate(row) if i not in level_cols]
        text = " | ".join(cells)
        out.append(_Piece(text, levels, True, text, caption))
    return out


def _tiers(pieces: list[_Piece], level: int) -> list[list[_Piece]]:
    """The pieces that may state a value for ``level``, strongest first: level-specific table
    rows, level-specific sentences, table rows for every level, sentences for every level."""
    specific = [p for p in pieces if p.levels is not None and level in p.levels]
    general = [p for p in pieces if p.levels is None]
    return [[p for p in specific if p.table], [p for p in specific if not p.table],
            [p for p in general if p.table], [p for p in general if not p.table]]


def _first(tiers: list[list[_Piece]], read: Callable[[list[_Piece]], list[_T]]) -> list[_T]:
    """What ``read`` finds in the strongest tier where it finds anything."""
    for tier in tiers:
        if found := read(tier):
            return found
    return []


def _nearest(text: str, span: tuple[int, int], keywords: dict[str, str]) -> str | None:
    """The category of the keyword nearest to ``span`` in ``text``, or None when there is none."""
    low, best, best_distance = text.lower(), None, None
    for pattern, category in keywords.items():
        for m in re.finditer(pattern, low):
            distance = span[0] - m.end() if m.end() <= span[0] else max(0, m.start() - span[1])
            if best_distance is None or distance < best_distance:
                best, best_distance = category, distance
    return best


_RATE = re.compile(r"\s*(?:a|per|each)\s+(?:day|week|month|year)\b|\s*در\s*(?:روز|هفته|سال)", re.IGNORECASE)


def _durations(pieces: list[_Piece], keywords: dict[str, str], want: str, *, default: bool,
               unit: str, round_up: bool) -> list[tuple[int, _Piece]]:
    """Durations (in ``unit``) whose nearest keyword is of category ``want``; with ``default``,
    also those in a piece with no keyword at all."""
    out = []
    for piece in pieces:
        for value, u, span in parse_duration(piece.text):
            if _RATE.match(piece.text, span[1]):
                continue  # "24 hours a day, 7 days a week" is availability, not a period
            category = _nearest(piece.text, span, keywords)
            if category == want or (category is None and default):
                out.append((convert_duration(value, u, unit, round_up=round_up), piece))
    return out


# ---------------------------------------------------------------------------------------------
# Certificate kinds, algorithms, methods

# Order matters: the first match names the kind ("Root CA certificate" before "CA certificate",
# "Code signing" before "signature").
_KINDS: tuple[tuple[str, str | None], ...] = (
    (r"\broot\b|ریشه", None),
    (r"\bocsp\b", "ocsp-signer"),
    (r"registration officer|کارشناس دفتر ثبت", "ra-officer"),
    (r"time[- ]?stamp|\btsa\b|مهر زمانی", "tsa"),
    (r"code[- ]sign|امضای کد", "code-signing"),
    (r"s/mime|\bsmime\b|e-?mail|پست الکترونیک|ایمیل", "smime"),
    (r"\bssl\b|\btls\b|\bserver\b|سرور", "ssl-server"),
    (r"\bseal\b|organi[sz]ation|مهر سازمانی", "organisational-seal"),
    (r"\bca certificates?\b|\bintermediates?\b|\bsubordinate cas?\b|\bissuing cas?\b|\bsub-?cas?\b|\bicas?\b"
     r"|\bsubordinate certification authorit(?:y|ies)\b|گواهی مرکز|مرکز میانی", "intermediate"),
    (r"\bpersonal\b|\bsignature\b|امضای دیجیتال", "personal-signature"),
)
_KIND_PATTERN = "|".join(f"(?:{p})" for p, _ in _KINDS) + "|" + "|".join(re.escape(k) for k in CERTIFICATE_KINDS)


# A caption names its kind by these first: "Root CA Certificate Profile" is the root's, "TLS
# Subordinate CA Certificate Profile" a CA certificate's, not a TLS server certificate's.
_CAPTION_FIRST = (_KINDS[0], _KINDS[1],
                  (r"\bsubordinate cas?\b|\bintermediates?\b|\bissuing cas?\b|\bsub-?cas?\b|\bicas?\b"
                   r"|\bsubordinate certification authorit(?:y|ies)\b|\bcross-certified\b", "intermediate"))


def _caption_kind(caption: str) -> str | None | bool:
    """The kind a table caption (a profile's heading) names, None for the root's own, or False
    when it names none."""
    low = caption.lower()
    for pattern, kind in _CAPTION_FIRST:
        if re.search(pattern, low):
            return kind
    found = _kind_of(low)
    return found if found is not None or re.search(_KIND_PATTERN, low) else False


def _kind_of(words: str) -> str | None:
    low = words.lower()
    if low.strip() in CERTIFICATE_KINDS:
        return low.strip()
    for pattern, kind in _KINDS:
        if re.search(pattern, low):
            return kind
    return None


_CURVES = {"p-256": "P-256", "p256": "P-256", "secp256r1": "P-256", "prime256v1": "P-256", "p-384": "P-384",
           "p384": "P-384", "secp384r1": "P-384", "p-521": "P-521", "p521": "P-521", "secp521r1": "P-521"}
# "P-256", "P256", and as some documents space it, "P- 256" or "P -256".
_CURVE = re.compile(r"\b(?:p(?:\s*[-‐‑–]\s*|[-‐‑–]?)(?:256|384|521)|secp(?:256|384|521)r1|prime256v1"
                    r"|brainpoolp\d+r1)\b", re.IGNORECASE)
_HASH = re.compile(r"(?<![a-z0-9])(?:sha-?(1|224|256|384|512)(?!\d)|(md5))", re.IGNORECASE)
_WEAK_HASHES = ("sha1", "md5")
_OID = re.compile(r"(?<![\d.])[0-2](?:\.(?:0|[1-9]\d*)){2,}(?![\d.]*\d)")
_BITS = re.compile(r"(?<![\d.])(\d{3,5})(?:\s*-?\s*bits?\b|(?=\s*$|\s*[|,;]))", re.IGNORECASE)


def _phrase_hits(text: str, phrases: dict[str, tuple[str, ...]]) -> list[str]:
    """The ids whose phrases occur in ``text`` and are not negated. A negation counts for the
    words between the previous hit (or the clause start) and the next hit (or the clause end);
    a clause ends at a comma, semicolon, colon, dash, bracket or table cell."""
    low = text.lower()
    hits = sorted(
        ((m.start(), m.end(), ident) for ident, words in phrases.items() for w in words
         for m in re.finditer(re.escape(w), low)),
        key=lambda h: (h[0], -h[1]))
    # Drop hits inside a longer hit ("fips 140-2 level 3" holds no second phrase).
    kept: list[tuple[int, int, str]] = []
    for h in hits:
        if not kept or h[0] >= kept[-1][1]:
            kept.append(h)
    out = []
    for i, (start, end, ident) in enumerate(kept):
        before = low[kept[i - 1][1] if i else 0:start]
        before = _CLAUSE_END.split(before)[-1]
        after = _CLAUSE_END.split(low[end:kept[i + 1][0] if i + 1 < len(kept) else len(low)])[0]
        if not _NEGATION.search(before) and not _NEGATION.search(after):
            out.append(ident)
    return out


_CLAUSE_END = re.compile(r"[,;:،؛()|]| - | – ")
_CA_OWN_KEYS = re.compile(r"\bCA\b|\bCA's|\broot\b|\bOCSP\b|\bTSA\b|مرکز", re.IGNORECASE)
_SUBSCRIBER = re.compile(r"subscriber|applicant|end[- ]entit|holder|مشترک|متقاضی", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Extraction

# Keywords that decide which claim a duration in a section belongs to (the nearest one wins).
_CRL_KEYWORDS = {r"next\s*update|nextupdate|\bvalid|validity|اعتبار": "next_update",
                 r"revo[ck]|ابطال": "publish",
                 r"\bevery\b|frequen|at least once|\bissued\b|\bهر\b": "issue"}
_OCSP_KEYWORDS = {r"next\s*update|nextupdate|\bvalid|validity|اعتبار": "validity",
                  r"\bevery\b|refresh|re-?sign|updated|\bbefore\b|respond|latency|within|revo[ck]|\bهر\b|ابطال": "other"}
_AUDIT_KEYWORDS = {r"\bevery\b|\bonce\b|interval|frequen|period|\bهر\b|\bcycle": "interval",
                   r"within|after|\bbefore\b|start|begin": "other"}
_RESPONDER_CERTIFICATE = re.compile(r"(?:responder|signer|signing|delegated)\W+(?:\w+\W+)?certificate|گواهی پاسخ",
                                    re.IGNORECASE)
_RESPONSES = re.compile(r"\brespons(?:e|es)\b|پاسخ‌ها", re.IGNORECASE)
# 4.9.5: a duration nearest to words about investigating a report, or acknowledging or
# answering one, says when the CA starts or replies, not how soon it revokes.
_REVOCATION_KEYWORDS = {r"revo[ck]|ابطال": "revoke",
                        r"investigat|begin|commence|start|acknowledg|respond|reply|response|report|بررسی": "other"}
_ANNUAL = re.compile(r"\bannual(?:ly)?\b|\byearly\b|once a year|سالانه", re.IGNORECASE)


@dataclass(frozen=True)
class _Reader:
    doc: CpsDocument
    level: int
    policy: CertificatePolicy

    def tiers(self, name: str) -> list[list[_Piece]]:
        """The claim's own sections' pieces, strongest first; then, as weaker tiers read only when
        those state nothing, the sections they refer to ("see section 7.2", "as 7.1 describes"):
        real CPSs state CRL and certificate profiles in section 7 and point there from 4.9.7,
        6.3.2 and 7.1.6."""
        own = CLAIM_NAMES[name]
        whole, above = _references(self.doc, own)
        tiers = _tiers(_pieces(self.doc, own), self.level)
        return tiers + _tiers(_pieces(self.doc, whole, above), self.level) if whole or above else tiers

    def claim(self, name: str, value: int | str | tuple[str, ...], piece: _Piece, kind: str | None = None) -> Claim:
        return Claim(name=name, value=value, section=CLAIM_NAMES[name][0], text=piece.text, kind=kind,
                     level=self.level if piece.levels is not None else None)


# In a referred section (a whole certificate profile), only OIDs in a certificate-policies context.
_POLICY_CONTEXT = re.compile(r"polic|سیاست", re.IGNORECASE)
_SECTION_REFERENCE = re.compile(
    r"(?:\bsections?|\bparagraphs?|\bclauses?|\bchapters?|§|\bsee|\bin|بخش|قسمت|بند)\s*\[?"
    r"((?:[1-9])(?:\.\d{1,2}){1,3})\b((?:\]?(?:\([^)]*\))?\s*(?:,|and|or|و)\s*\[?(?:[1-9])(?:\.\d{1,2}){1,3}\b)*)",
    re.IGNORECASE)
_MORE_NUMBERS = re.compile(r"(?<![\d.])([1-9](?:\.\d{1,2}){1,3})\b")
# "Section 4.9.7 of the Baseline Requirements", "sections 4.9.1.1 and 4.9.1.2 of RFC 5280": a
# section of another document, not of this one ("of this CPS" is this one).
_OTHER_DOCUMENT = re.compile(r"\]?(?:\([^)]*\))?\s*(?:(?:,|and|or)\s*\[?[\d.]+\]?(?:\([^)]*\))?\s*)*"
                             r"of\s+(?:the\s+)?(?!this\b|these\b)\w", re.IGNORECASE)


def _references(doc: CpsDocument, own: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The sections ``own`` refers to, to be read whole, and those above ``own`` it refers to, to
    be read for their own text only: "See Section 7.1" from 7.1.6 means 7.1's profile tables,
    while "§4.9" from 4.9.5 must not bring in every other part of 4.9. References to ``own``
    itself or below it are its own text already."""
    whole, above = [], []
    for ref in _referred(doc, own):
        if any(ref == o or ref.startswith(o + ".") for o in own):
            continue
        (above if any(o.startswith(ref + ".") for o in own) else whole).append(ref)
    return whole, above


def _referred(doc: CpsDocument, numbers: Iterable[str]) -> list[str]:
    """The section numbers the text of ``numbers`` (and their subsections) refers to, that the
    document has, in order of first mention."""
    out: list[str] = []
    for number in numbers:
        for section in doc.subtree(number):
            text = normalise_digits(section.text)
            for m in _SECTION_REFERENCE.finditer(text):
                if _OTHER_DOCUMENT.match(text, m.end()):
                    continue
                for ref in [m.group(1), *_MORE_NUMBERS.findall(m.group(2) or "")]:
                    if ref not in out and doc.get(ref) is not None:
                        out.append(ref)
    return out


def _validity(r: _Reader) -> list[Claim]:
    def read(pieces: list[_Piece]) -> list[tuple[str, int, _Piece]]:
        out = []
        for piece in pieces:
            if piece.table:
                # A row names one certificate: the first cell that names a kind.
                first = next((c for c in piece.text.split(" | ") if _kind_of(c.split(":", 1)[-1])), "")
                kinds = [(0, _kind_of(first.split(":", 1)[-1]))] if first else []
                if not kinds and piece.caption and (named := _caption_kind(piece.caption)) is not False:
                    kinds = [(0, named)]  # a profile table: its heading names the kind
            else:
                kinds = [(m.start(), _kind_of(m.group()))
                         for m in re.finditer(_KIND_PATTERN, piece.text, re.IGNORECASE)]
            previous_end = 0
            for value, unit, span in parse_duration(piece.text):
                # The kinds named since the previous duration ("personal signature and seal
                # certificates for 2 years"), else the first named after it.
                named = [k for at, k in kinds if previous_end <= at < span[0]] if not piece.table else \
                    [k for _, k in kinds]
                named = named or [k for at, k in kinds if at >= span[1]][:1]
                previous_end = span[1]
                days = convert_duration(value, unit, "day")
                # None: the root's own certificate, not the intermediate's to set.
                out.extend((kind, days, piece) for kind in named if kind is not None)
        return out

    tiers = r.tiers("validity_days")
    claims = []
    for kind in CERTIFICATE_KINDS:
        found = _first(tiers, lambda t, k=kind: [(d, p) for kk, d, p in read(t) if kk == k])  # type: ignore[misc]
        if found:
            days, piece = max(found, key=lambda dp: dp[0])
            claims.append(r.claim("validity_days", days, piece, kind=kind))
    return claims


def _keys(r: _Reader) -> list[Claim]:
    def bits(pieces: list[_Piece]) -> list[tuple[int, _Piece]]:
        out = []
        for piece in pieces:
            # A clause without "RSA" counts when its sentence speaks of RSA and it names no other
            # algorithm ("RSA keys are at least 2048 bits (3072 bits at level 4)").
            rsa = re.search(r"\brsa\b", piece.text, re.IGNORECASE)
            if rsa or (re.search(r"\brsa\b", piece.sentence, re.IGNORECASE)
                       and not re.search(r"\b(?:ec|ecdsa|eddsa|ed25519|dsa)\b", piece.text, re.IGNORECASE)):
                part = piece.text[rsa.start():] if rsa and not piece.table else piece.text
                out.extend((int(b), piece) for b in _BITS.findall(part) if int(b) >= 512)
        return out

    def curves(pieces: list[_Piece]) -> list[tuple[str, _Piece]]:
        return [(_CURVES.get(re.sub(r"[\s‐‑–]", lambda c: "" if c.group().isspace() else "-", m.group().lower()),
                             m.group()), p)
                for p in pieces for m in _CURVE.finditer(p.text)]

    claims = []
    if found := _first(r.tiers("rsa_min_bits"), bits):
        smallest, piece = min(found, key=lambda bp: bp[0])
        claims.append(r.claim("rsa_min_bits", smallest, piece))
    if named := _first(r.tiers("ec_curves"), curves):
        claims.append(r.claim("ec_curves", tuple(sorted({c for c, _ in named})), named[0][1]))
    return claims


def _hashes(r: _Reader) -> list[Claim]:
    def read(pieces: list[_Piece]) -> list[tuple[str, _Piece]]:
        out = []
        for piece in pieces:
            negated = bool(_NEGATION.search(piece.text))
            for m in _HASH.finditer(piece.text):
                name = "md5" if m.group(2) else f"sha{m.group(1)}"
                if not (negated and name in _WEAK_HASHES):
                    out.append((name, piece))
        return out

    # Hashes are not per level: every algorithm the section allows counts.
    named = read([p for tier in r.tiers("hashes") for p in tier])
    if not named:
        return []
    return [r.claim("hashes", tuple(sorted({h for h, _ in named})), named[0][1])]


def _durations_claims(r: _Reader) -> list[Claim]:
    claims = []
    # name, keywords, the category wanted, whether a duration with no keyword counts, unit, and
    # whether to round up (a cap) or down (a floor). The loosest value is always the largest.
    specs: list[tuple[str, dict[str, str], str, bool, str, bool]] = [
        ("crl_next_update_hours", _CRL_KEYWORDS, "next_update", False, "hour", True),
        ("crl_publish_within_hours", _CRL_KEYWORDS, "publish", False, "hour", True),
        ("revocation_processing_hours", _REVOCATION_KEYWORDS, "revoke", True, "hour", True),
        ("ocsp_validity_hours", _OCSP_KEYWORDS, "validity", True, "hour", True),
        ("audit_log_retention_years", {}, "", True, "year", False),
        ("archive_retention_years", {}, "", True, "year", False),
        ("compliance_audit_months", _AUDIT_KEYWORDS, "interval", True, "month", True),
    ]
    for name, keywords, want, default, unit, round_up in specs:
        tiers = r.tiers(name)
        if name == "ocsp_validity_hours":
            # The validity of the responder's own certificate is 6.3.2's, not a response's: a
            # sentence about that certificate counts only when it also speaks of responses.
            tiers = [[p for p in t if not _RESPONDER_CERTIFICATE.search(p.sentence) or _RESPONSES.search(p.sentence)]
                     for t in tiers]

        def read(pieces: list[_Piece], name: str = name, keywords: dict[str, str] = keywords, want: str = want,
                 default: bool = default, unit: str = unit, round_up: bool = round_up) -> list[tuple[int, _Piece]]:
            found = _durations(pieces, keywords, want, default=default, unit=unit, round_up=round_up)
            if name == "compliance_audit_months":
                found += [(12, p) for p in pieces if _ANNUAL.search(p.text) and not parse_duration(p.text)]
            return found

        if found := _first(tiers, read):
            loosest, piece = max(found, key=lambda vp: vp[0])
            claims.append(r.claim(name, loosest, piece))
    return claims


def _methods(r: _Reader) -> list[Claim]:
    claims = []
    proofing = {m.id: m.phrases for m in r.policy.identity_proofing_methods}
    rank = {m.id: m.rank for m in r.policy.identity_proofing_methods}
    named = _first(r.tiers("identity_proofing"),
                   lambda t: [(ident, p) for p in t for ident in _phrase_hits(p.text, proofing)])
    if named:
        ident, piece = max(named, key=lambda ip: rank[ip[0]])
        claims.append(r.claim("identity_proofing", ident, piece))
    storages = {m.id: m.phrases for m in r.policy.key_storages}
    srank = {m.id: m.rank for m in r.policy.key_storages}
    pieces = [p for p in _pieces(r.doc, CLAIM_NAMES["key_storage"])
              if p.table or not _CA_OWN_KEYS.search(p.text) or _SUBSCRIBER.search(p.text)]
    stored = _first(_tiers(pieces, r.level),
                    lambda t: [(ident, p) for p in t for ident in _phrase_hits(p.text, storages)])
    if stored:
        ident, piece = min(stored, key=lambda ip: srank[ip[0]])
        claims.append(r.claim("key_storage", ident, piece))
    return claims


def _policy_oids(r: _Reader) -> list[Claim]:
    # Every OID the section lists counts, whatever level it is written against: the check asks
    # whether the level's OID is among them. Where 7.1.6 lists none and refers elsewhere ("See
    # Section 7.1"), the sections it names are read.
    own = CLAIM_NAMES["policy_oids"]
    oids = {m.group(): p for p in _pieces(r.doc, own) for m in _OID.finditer(p.text)}
    if not oids:
        whole, above = _references(r.doc, own)
        oids = {m.group(): p for p in _pieces(r.doc, whole, above) for m in _OID.finditer(p.text)
                if _POLICY_CONTEXT.search(p.text)}
    if not oids:
        return []
    return [r.claim("policy_oids", tuple(sorted(oids)), next(iter(oids.values())))]


# How to state each claim, for CPS-CLAIM-UNREAD.
_HOW: dict[str, tuple[str, str]] = {
    "validity_days": ("the maximum validity of the CA certificate and of each certificate kind",
                      "a table | Certificate | Maximum validity | with rows such as 'CA certificate | 10 years'"),
    "rsa_min_bits": ("the minimum RSA key size", "a row 'RSA | 2048 bits' in the table | Algorithm | Minimum size / curves |"),
    "ec_curves": ("the ECDSA curves", "a row 'ECDSA | P-256, P-384' in the table | Algorithm | Minimum size / curves |"),
    "hashes": ("the signature algorithms", "the algorithm names, e.g. 'sha256WithRSAEncryption, ecdsa-with-SHA384'"),
    "crl_next_update_hours": ("the nextUpdate of complete CRLs", "'nextUpdate is at most 7 days after thisUpdate'"),
    "crl_publish_within_hours": ("how soon a new CRL follows a revocation", "'a new CRL is issued within 24 hours of a revocation'"),
    "revocation_processing_hours": ("how soon a verified revocation request is acted on",
                                    "'a verified revocation request is processed within 24 hours'"),
    "ocsp_validity_hours": ("the validity of OCSP responses", "'OCSP responses are valid for at most 4 days'"),
    "identity_proofing": ("the identity proofing method", "the method in the CP's words, e.g. 'an in-person visit to a "
                          "registration office', per level ('Level 2: ...') or in a table with a Level column"),
    "key_storage": ("where subscriber private keys are kept", "'level 2 subscriber keys are generated on a lab-approved "
                    "token', per level or in a table with a Level column"),
    "audit_log_retention_years": ("how long audit logs are kept", "'audit logs are kept for 7 years'"),
    "archive_retention_years": ("how long archived records are kept", "'archived records are kept for 10 years'"),
    "compliance_audit_months": ("how often the compliance audit takes place", "'a compliance audit at least once every 12 months'"),
    "policy_oids": ("the certificate policy OIDs", "the OIDs as dotted numbers, e.g. '2.16.364.101.1.2 for level 2'"),
}


def _unread(doc: CpsDocument, name: str, level: int, what: str | None = None) -> Finding:
    number = CLAIM_NAMES[name][0]
    section = doc.get(number)
    subject, example = _HOW[name]
    where = "is missing" if section is None else "does not state " + (what or subject) + " in a form the checker can read"
    return Finding(
        rule="CPS-CLAIM-UNREAD", severity=Severity.WARNING,
        stage=Stage.TECHNICAL if name in _TECHNICAL else Stage.POLICIES, place=f"CPS {number}",
        message=f"CPS {number} {where} for level {level}" if section is not None
        else f"CPS {number} {where}, so {subject} for level {level} cannot be compared with the national CP",
        fix=f"State {what or subject} in {number} as a number and a unit or in the CP's words, e.g. {example}.",
        requirement=f"national CP level {level}: {name}")


_TECHNICAL = ("rsa_min_bits", "ec_curves", "hashes", "key_storage")


def extract_claims(doc: CpsDocument, level: int, policy: CertificatePolicy) -> tuple[list[Claim], list[Finding]]:
    """Every value the CPS states for assurance ``level``, and a CPS-CLAIM-UNREAD warning for
    each value the CP limits that the CPS does not state readably (rules in the module docstring)."""
    reader = _Reader(doc, level, policy)
    claims = (_validity(reader) + _keys(reader) + _hashes(reader) + _durations_claims(reader) + _methods(reader)
              + _policy_oids(reader))
    read = {c.name for c in claims}
    findings = [_unread(doc, name, level) for name in CLAIM_NAMES if name not in read]
    if "validity_days" in read and not any(c.name == "validity_days" and c.kind == "intermediate" for c in claims):
        findings.append(_unread(doc, "validity_days", level, "the maximum validity of the CA certificate"))
    return claims, findings


# ---------------------------------------------------------------------------------------------
# Comparison with the CP

_KIND_WORDS = {"intermediate": "CA certificates", "personal-signature": "personal signature certificates",
               "organisational-seal": "organisational seal certificates", "ssl-server": "SSL/TLS server certificates",
               "smime": "S/MIME certificates", "code-signing": "code signing certificates",
               "tsa": "time-stamping (TSA) certificates", "ocsp-signer": "OCSP signer certificates",
               "ra-officer": "registration officer certificates"}


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _finding(rule: str, claim: Claim, level: int, message: str, requirement: str, fix: str) -> Finding:
    stage = Stage.TECHNICAL if claim.name in _TECHNICAL else Stage.POLICIES
    return Finding(rule=rule, severity=Severity.ERROR, stage=stage, place=f"CPS {claim.section}",
                   message=message, fix=fix, requirement=f"national CP level {level}, {requirement}")


def _bound(rule: str, claim: Claim, level: int, limit: int, unit: str, what: str, field_name: str, *,
           at_most: bool) -> list[Finding]:
    """A finding when the claim is above the CP's cap (``at_most``) or below its floor."""
    assert isinstance(claim.value, int)
    if (claim.value <= limit) if at_most else (claim.value >= limit):
        return []
    bound = f"at most {_plural(limit, unit)}" if at_most else f"at least {_plural(limit, unit)}"
    verb = "allows" if at_most else "requires"
    return [_finding(rule, claim, level,
                     f"CPS {claim.section} states {what} {_plural(claim.value, unit)}; the national CP {verb} "
                     f"{bound} at level {level}",
                     f"{field_name}: {bound}", f"Change {claim.section} to {bound}.")]


def _subset(rule: str, claim: Claim, level: int, allowed: tuple[str, ...], what: str, field_name: str) -> list[Finding]:
    assert isinstance(claim.value, tuple)
    extra = [v for v in claim.value if v not in allowed]
    if not extra:
        return []
    return [_finding(rule, claim, level,
                     f"CPS {claim.section} allows {what} {', '.join(extra)}; the national CP allows only "
                     f"{', '.join(allowed)} at level {level}",
                     f"{field_name}: {', '.join(allowed)}",
                     f"Remove {', '.join(extra)} from {claim.section}, or state them as not used.")]


# Claims with a number the CP caps or floors: rule, whether it is a cap, CP field (dotted path in the
# level), unit, and the words before the value in the message.
_BOUNDS: dict[str, tuple[str, bool, str, str, str]] = {
    "rsa_min_bits": ("CPS-CLAIM-KEY-SIZE", False, "keys.min_rsa_bits", "bit", "RSA keys of"),
    "crl_next_update_hours": ("CPS-CLAIM-CRL-NEXT-UPDATE", True, "status.crl_next_update_hours", "hour",
                              "a CRL nextUpdate of"),
    "crl_publish_within_hours": ("CPS-CLAIM-CRL-PUBLISH", True, "status.crl_publish_within_hours", "hour",
                                 "a new CRL after a revocation within"),
    "revocation_processing_hours": ("CPS-CLAIM-REVOCATION-DELAY", True, "status.revocation_processing_hours", "hour",
                                    "revocation requests processed within"),
    "ocsp_validity_hours": ("CPS-CLAIM-OCSP-VALIDITY", True, "status.ocsp_validity_hours", "hour",
                            "OCSP responses valid for"),
    "audit_log_retention_years": ("CPS-CLAIM-AUDIT-LOG-RETENTION", False, "records.audit_log_retention_years", "year",
                                  "audit logs kept for"),
    "archive_retention_years": ("CPS-CLAIM-ARCHIVE-RETENTION", False, "records.archive_retention_years", "year",
                                "archived records kept for"),
    "compliance_audit_months": ("CPS-CLAIM-COMPLIANCE-AUDIT", True, "records.compliance_audit_months", "month",
                                "a compliance audit every"),
}


def _check_one(claim: Claim, policy: CertificatePolicy, lv: AssuranceLevel) -> list[Finding]:
    n = lv.level
    match claim.name:
        case "validity_days" if claim.kind in lv.max_validity_days:
            assert claim.kind is not None
            return _bound("CPS-CLAIM-VALIDITY", claim, n, lv.max_validity_days[claim.kind], "day",
                          f"{_KIND_WORDS[claim.kind]} valid", f"max_validity_days.{claim.kind}", at_most=True)
        case name if name in _BOUNDS:
            rule, at_most, field_name, unit, what = _BOUNDS[name]
            group, attribute = field_name.split(".")
            limit = getattr(getattr(lv, group), attribute)
            return _bound(rule, claim, n, limit, unit, what, field_name, at_most=at_most)
        case "ec_curves":
            return _subset("CPS-CLAIM-CURVE", claim, n, lv.keys.ec_curves, "the curves", "keys.ec_curves")
        case "hashes":
            return _subset("CPS-CLAIM-HASH", claim, n, lv.keys.hashes, "the hash algorithms", "keys.hashes")
        case "identity_proofing":
            stated, needed = policy.identity_method(str(claim.value)), policy.identity_method(lv.identity_proofing)
            if stated.rank >= needed.rank:
                return []
            return [_finding("CPS-CLAIM-IDENTITY", claim, n,
                             f"CPS {claim.section} states identity proofing by {stated.id} ({stated.text}); the "
                             f"national CP requires at least {needed.id} at level {n}",
                             f"identity_proofing: {needed.id} ({needed.text})",
                             f"Describe in {claim.section} {needed.text} for level {n}.")]
        case "key_storage":
            stated, needed = policy.key_storage(str(claim.value)), policy.key_storage(lv.keys.storage)
            if stated.rank >= needed.rank:
                return []
            return [_finding("CPS-CLAIM-KEY-STORAGE", claim, n,
                             f"CPS {claim.section} allows keys in {stated.id} ({stated.text}); the national CP "
                             f"requires at least {needed.id} at level {n}",
                             f"keys.storage: {needed.id} ({needed.text})",
                             f"Require in {claim.section} {needed.text} for level {n}.")]
        case "policy_oids":
            assert isinstance(claim.value, tuple)
            if lv.policy_oid in claim.value:
                return []
            return [_finding("CPS-CLAIM-POLICY-OID", claim, n,
                             f"CPS {claim.section} lists the policy OIDs {', '.join(claim.value)}; the national CP's "
                             f"OID for level {n} is {lv.policy_oid}, which is not among them",
                             f"policy_oid: {lv.policy_oid}",
                             f"List {lv.policy_oid} for level {n} in {claim.section}.")]
    return []


def check_claims(claims: list[Claim], policy: CertificatePolicy, level: int) -> list[Finding]:
    """Each claim against the CP for ``level``: one ERROR finding per claim that breaks it."""
    lv = policy.level(level)
    return [f for claim in claims for f in _check_one(claim, policy, lv)]
