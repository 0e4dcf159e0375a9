"""Does a CPS follow the RFC 3647 section 6 outline? (the CPS-STRUCT-* rules, licensing stage 1).

RFC 3647 section 3.4 asks CPS writers to keep all nine sections and every component, writing
"No stipulation" where they have nothing to say, so that a CP and CPSs can be compared heading by
heading. :func:`check_structure` finds, one finding per problem, sorted by document position:

- CPS-STRUCT-MISSING (ERROR): an outline heading the CPS lacks; the message names the heading
  and where it belongs (after / before which heading).
- CPS-STRUCT-ORDER (ERROR): a heading out of RFC 3647 order. The headings kept in order are the
  longest run in outline order that keeps the earliest headings of the file; each other heading
  is reported once (its sub-sections moved with it are not reported again).
- CPS-STRUCT-DUPLICATE (ERROR): a number that heads two sections (the later one is reported).
- CPS-STRUCT-EMPTY (ERROR): an outline heading with no body and no sub-section. "No
  stipulation." is a body, so it is not empty.
- CPS-STRUCT-NO-STIPULATION (ERROR): a body that says only "No stipulation" or "Not applicable"
  (Persian "بدون شرط", "بدون قید", "موردی ندارد", "قابل اعمال نیست") in a section whose
  :attr:`~.outline.Heading.stipulation_required` is set. "Not applicable" counts: where the
  national CP sets a requirement it applies to every licensed CA, so "not applicable" says as
  little as "no stipulation". A body that says more than the phrase, or a section with
  sub-sections of its own, is not reported.
- CPS-STRUCT-VAGUE (WARNING): vague timing words ("promptly", "periodically", "به موقع", ...)
  in a section whose :attr:`~.outline.Heading.needs_number` is set, when the sentence (or table
  row) that holds them states no number with a unit. "Within 24 hours, and promptly after a key
  compromise" is precise; "CRLs are issued periodically." is not, even when another sentence of
  the section has a number, because that number may well be about something else.
- CPS-STRUCT-TITLE (WARNING): a title that differs from RFC 3647 after normalising case, word
  order, punctuation, parenthetical qualifiers ("(if applicable)"), plurals, small words ("of",
  "and", "the", ...), "organization/organisation", "on-line/online", "enrollment/enrolment" and
  "re-keyed/re-keying/re-key"; the CA/Browser Forum's own titles of 3.2.2, 4.9.12, 7.1.2 and
  7.2.2 are accepted too, and their 8.7 Self-Audits is an INFO extra.
  A title with no Latin letters (written in Persian) is not compared: a translation is not a
  retitling.
- CPS-STRUCT-EXTRA: a numbered heading the outline does not have. INFO for a sub-section that
  refines an outline heading RFC 3647 does not divide further: 4.9.1.1 below 4.9.1, 1.6.1 below
  1.6 (as the CA/Browser Forum requirements do), and anything deeper below those (1.6.1.1 below
  an added 1.6.1 too: each is judged by its nearest outline ancestor). WARNING for a
  number that departs from the outline: a new sibling (4.9.17, 4.13, 10) or a sub-section of one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .document import normalise_digits
from .model import CpsDocument, Finding, Section, Severity, Stage
from .outline import OUTLINE, Heading, heading, index_of, parent_number

__all__ = ["VAGUE_PHRASES", "NO_STIPULATION_PHRASES", "check_structure", "normalise_title",
           "vague_phrases_in"]

#: Wording that promises no measurable time (English and Persian), lower case.
VAGUE_PHRASES: tuple[str, ...] = (
    "promptly", "periodically", "as appropriate", "regularly", "in a timely manner", "timely",
    "reasonable time", "reasonable period", "as soon as possible", "as soon as practicable",
    "as soon as reasonably practicable", "from time to time", "as needed", "as necessary",
    "without undue delay", "in due course", "when necessary", "where appropriate", "frequently",
    "به موقع", "در اسرع وقت", "به طور دوره‌ای", "به طور دوره ای", "بطور دوره‌ای", "به‌طور دوره‌ای",
    "دوره‌ای", "به صورت دوره‌ای", "در زمان مناسب", "در صورت لزوم", "به طور منظم", "بدون تأخیر",
    "بدون تاخیر", "فوراً", "فورا",
)

#: A body made of one of these only says nothing (compared after lower-casing and trimming
#: punctuation and emphasis).
NO_STIPULATION_PHRASES: tuple[str, ...] = (
    "no stipulation", "not applicable", "n/a", "none", "بدون شرط", "بدون قید", "موردی ندارد",
    "قابل اعمال نیست", "کاربرد ندارد",
)

_UNIT = (r"(?:minute|minutes|min|mins|hour|hours|hr|hrs|h|day|days|week|weeks|month|months|year|years|"
         r"second|seconds|bit|bits|byte|bytes|business\s+days?|working\s+days?|"
         r"دقیقه|ساعت|روز|هفته|ماه|سال|ثانیه|بیت)")
_NUMBER_WORDS = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|eighteen|"
                 r"twenty|twenty-four|thirty|thirty-six|forty-eight|seventy-two|ninety|hundred)")
_QUANTITY = re.compile(
    rf"(?:\b\d+(?:[.,]\d+)?\s*-?\s*{_UNIT}(?![a-z])|\b{_NUMBER_WORDS}\s*(?:\(\s*\d+\s*\)\s*)?-?\s*{_UNIT}(?![a-z])|"
    r"\b(?:once|twice)\s+(?:a|an|per|every|each)\s+\w+|\b(?:daily|weekly|monthly|hourly|annually|yearly)\b|"
    r"\bP-?(?:256|384|521)\b|\b\d{4,}\b)",
    re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?؟;])\s+")
_STOP_WORDS = frozenset("a an and or of for the to by on in re as per with under which".split())
_SPELLING = (("organisation", "organization"), ("on-line", "online"), ("on line", "online"),
             ("enrolment", "enrollment"), ("unauthorised", "unauthorized"), ("&", " and "),
             ("life-cycle", "lifecycle"), ("life cycle", "lifecycle"), ("re-key", "rekey"),
             ("time-stamping", "timestamping"), ("time stamping", "timestamping"))


def _finding(rule: str, severity: Severity, place: str, message: str, fix: str,
             requirement: str = "") -> Finding:
    return Finding(rule=rule, severity=severity, stage=Stage.POLICIES, place=f"CPS {place}", message=message,
                   fix=fix, requirement=requirement)


def _describe(h: Heading) -> str:
    return f"{h.number} {h.title}"


#: Titles the CA/Browser Forum's requirements give some RFC 3647 components (TLS BR, S/MIME BR,
#: Code Signing BR); a CPS that follows them has not retitled the component.
CABF_TITLES: dict[str, tuple[str, ...]] = {
    "3.2.2": ("Authentication of organization and domain identity", "Authentication of organization identity and "
              "domain control"),
    "4.9.12": ("Special requirements related to key compromise",),
    "7.1.2": ("Certificate content and extensions", "Certificate content and extensions; application of RFC 5280"),
    "7.2.2": ("CRL and CRL entry extensions",),
}
#: Sections the CA/Browser Forum's requirements add to the RFC 3647 outline (TLS BR 8.7).
CABF_SECTIONS: dict[str, str] = {"8.7": "Self-audits"}


def normalise_title(title: str) -> str:
    """A title reduced to what RFC 3647 conformance cares about (see the module docstring)."""
    t = normalise_digits(title).lower()
    t = re.sub(r"\([^)]*\)", " ", t)
    for old, new in _SPELLING:
        t = t.replace(old, new)
    if not re.search(r"[a-z]", t):
        return ""
    t = re.sub(r"[^a-z0-9]+", " ", t)
    words = []
    for w in t.split():
        if w in _STOP_WORDS:
            continue
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"  # policies: policy
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        if w in ("rekeyed", "rekeying"):
            w = "rekey"  # "re-key certificate", "re-keyed certificate", "re-keying requests": one thing
        words.append(w)
    # The same words in another order ("Certificate suspension and revocation") are the same title.
    return " ".join(sorted(words))


def _sentences(text: str) -> Iterable[str]:
    """Sentences of a body: paragraphs joined across their line breaks, table rows one by one."""
    for block in re.split(r"\n\s*\n", text):
        rows = [ln for ln in block.splitlines() if ln.strip()]
        prose: list[str] = []
        for ln in rows:
            if ln.lstrip().startswith("|"):
                yield ln
            else:
                prose.append(ln.strip())
        if prose:
            yield from _SENTENCE_END.split(" ".join(prose))


def _phrase_at(text: str, phrase: str) -> int:
    """Where ``phrase`` stands in ``text`` as whole words, -1 when it does not."""
    if re.search(r"[a-z]", phrase):
        m = re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", text)
    else:
        m = re.search(re.escape(phrase), text)
    return m.start() if m else -1


def vague_phrases_in(text: str) -> list[tuple[str, str]]:
    """(phrase, sentence) for each vague phrase in a sentence of ``text`` that states no quantity."""
    found = []
    for sentence in _sentences(text):
        low = normalise_digits(sentence).lower()
        hits = [p for p in VAGUE_PHRASES if _phrase_at(low, p) >= 0]
        # "timely" inside "in a timely manner", "دوره‌ای" inside "به طور دوره‌ای": report the longer.
        hits = [p for p in hits if not any(p != q and p in q for q in hits)]
        if hits and not _QUANTITY.search(normalise_digits(sentence)):
            found.extend((p, sentence.strip()) for p in sorted(hits, key=lambda p: _phrase_at(low, p)))
    return found


def _says_nothing(text: str) -> str | None:
    """The "no stipulation" phrase ``text`` consists of, or None."""
    t = re.sub(r"[*_`>\s]+", " ", text).strip().lower()
    t = t.strip(" .!:;،؛")
    for phrase in NO_STIPULATION_PHRASES:
        if t == phrase:
            return phrase
    return None


def _in_order(indices: list[int]) -> set[int]:
    """Positions (into ``indices``) of the longest increasing run that keeps the earliest items."""
    n = len(indices)
    best = [1] * n  # best[i]: the longest increasing run starting at i
    for i in range(n - 2, -1, -1):
        for j in range(i + 1, n):
            if indices[j] > indices[i] and best[j] + 1 > best[i]:
                best[i] = best[j] + 1
    keep: set[int] = set()
    want = max(best, default=0)
    last = -1
    for i in range(n):
        if best[i] == want and indices[i] > last:
            keep.add(i)
            last = indices[i]
            want -= 1
            if want == 0:
                break
    return keep


def check_structure(doc: CpsDocument) -> list[Finding]:
    """Every CPS-STRUCT-* finding of ``doc``, sorted by where it is (or belongs) in the file."""
    out: list[tuple[float, int, Finding]] = []

    def add(pos: float, f: Finding) -> None:
        out.append((pos, len(out), f))

    numbers = [s.number for s in doc.sections]
    first: dict[str, Section] = {}
    for s in doc.sections:
        if s.number in first:
            add(s.line, _finding(
                "CPS-STRUCT-DUPLICATE", Severity.ERROR, s.number,
                f"section {s.number} appears twice: line {first[s.number].line} "
                f"({first[s.number].title!r}) and line {s.line} ({s.title!r})",
                f"merge the two {s.number} sections into one, or renumber the second",
                "RFC 3647 section 6: each component once"))
        else:
            first[s.number] = s

    # Order: the outline sections present, first occurrence, in file order.
    present = [s for s in doc.sections if heading(s.number) and first[s.number] is s]
    kept = _in_order([index_of(s.number) or 0 for s in present])
    misplaced = {present[i].number for i in range(len(present)) if i not in kept}
    for i, s in enumerate(present):
        if s.number not in misplaced:
            continue
        parent = parent_number(s.number)
        if parent is not None and parent in misplaced:
            continue  # moved together with its parent: one problem, reported at the parent
        h = heading(s.number)
        assert h is not None
        previous = next((present[k] for k in range(i - 1, -1, -1) if k in kept), None)
        add(s.line, _finding(
            "CPS-STRUCT-ORDER", Severity.ERROR, s.number,
            f"section {_describe(h)} (line {s.line}) is out of RFC 3647 order"
            + (f": it comes after {previous.number} {previous.title}" if previous else ""),
            f"move {s.number} to where RFC 3647 puts it: {_neighbours(s.number)}",
            "RFC 3647 section 6: the components in the outline's order"))

    # Missing: placed just after the closest earlier outline heading the file has.
    line_of = {n: s.line for n, s in first.items()}
    last_line = 0.0
    for h in OUTLINE:
        if h.number in first:
            last_line = max(last_line, line_of[h.number])
            continue
        add(last_line + 0.5, _finding(
            "CPS-STRUCT-MISSING", Severity.ERROR, h.number,
            f"section {_describe(h)} is missing",
            f"add the heading '{'#' * h.depth} {_describe(h)}' {_neighbours(h.number)}, with the CA's "
            + ("practice" if h.stipulation_required else "practice, or 'No stipulation.'"),
            "RFC 3647 section 6: every component of the outline"))

    for s in doc.sections:
        h = heading(s.number)
        if h is None:
            _extra(s, add)
            continue
        if first[s.number] is not s:
            continue
        has_children = any(n.startswith(s.number + ".") for n in numbers)
        body = s.text.strip()
        if not body and not has_children:
            add(s.line, _finding(
                "CPS-STRUCT-EMPTY", Severity.ERROR, s.number,
                f"section {_describe(h)} (line {s.line}) has no text",
                "state the CA's practice" if h.stipulation_required
                else "state the CA's practice, or write 'No stipulation.'",
                "RFC 3647 section 3.4: a component with nothing to say reads 'No stipulation'"))
            continue
        phrase = _says_nothing(body)
        if phrase and h.stipulation_required and not has_children:
            add(s.line, _finding(
                "CPS-STRUCT-NO-STIPULATION", Severity.ERROR, s.number,
                f"section {_describe(h)} (line {s.line}) says only {phrase!r}, but the national CP sets "
                "requirements here that the CPS must state how it meets",
                f"replace {phrase!r} with the CA's practice ({_bare(h.title)})"
                + (", with the numbers and units (hours, days, years, bits)" if h.needs_number else ""),
                f"national CP, section {s.number}: the CPS must state its practice"))
        if h.needs_number:
            for vague, sentence in vague_phrases_in(body):
                add(s.line, _finding(
                    "CPS-STRUCT-VAGUE", Severity.WARNING, s.number,
                    f"section {_describe(h)} (line {s.line}) says {vague!r} without a number: "
                    f"{_shorten(sentence)!r}",
                    f"replace {vague!r} with a number and a unit (e.g. 'within 24 hours', 'every 7 days')",
                    f"national CP, section {s.number}: a period or size the CPS must state as a number"))
        if s.title and normalise_title(s.title) and normalise_title(s.title) not in {
                normalise_title(t) for t in (h.title, *CABF_TITLES.get(s.number, ()))}:
            add(s.line, _finding(
                "CPS-STRUCT-TITLE", Severity.WARNING, s.number,
                f"section {s.number} (line {s.line}) is titled {s.title!r}; RFC 3647 calls it {h.title!r}",
                f"retitle it '{s.number} {h.title}', or move its text to the section it belongs to",
                "RFC 3647 section 6: the outline's titles"))
    return [f for _, _, f in sorted(out, key=lambda t: (t[0], t[1]))]


def _neighbours(number: str) -> str:
    i = index_of(number)
    assert i is not None
    before = OUTLINE[i - 1] if i > 0 else None
    after = OUTLINE[i + 1] if i + 1 < len(OUTLINE) else None
    parts = []
    if before is not None:
        parts.append(f"after {_describe(before)}")
    if after is not None:
        parts.append(f"before {_describe(after)}")
    return " and ".join(parts)


def _bare(title: str) -> str:
    """A title without its parenthetical qualifier: "CRL issuance frequency"."""
    return re.sub(r"\s*\([^)]*\)", "", title).strip()


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _extra(s: Section, add: Callable[[float, Finding], None]) -> None:
    if s.number in CABF_SECTIONS or any(s.number.startswith(n + ".") for n in CABF_SECTIONS):
        top = s.number if s.number in CABF_SECTIONS else next(n for n in CABF_SECTIONS if s.number.startswith(n + "."))
        add(s.line, _finding(
            "CPS-STRUCT-EXTRA", Severity.INFO, s.number,
            f"section {s.number} {s.title} (line {s.line}) is one the CA/Browser Forum's requirements add to "
            f"the RFC 3647 outline ({top} {CABF_SECTIONS[top]})",
            "nothing to do", "CA/Browser Forum TLS Baseline Requirements, section 8.7"))
        return
    # A sub-section below an outline heading that RFC 3647 does not divide further (4.9.1.1 below
    # 4.9.1, 1.6.1 below 1.6) refines the outline; a new sibling (4.9.17, 4.13, 10) departs from it.
    parent = parent_number(s.number)
    known = heading(parent) if parent else None
    # Up to the nearest outline heading: 1.6.1.1 below an added 1.6.1 refines 1.6 as 1.6.1 does.
    ancestor = parent
    while known is None and ancestor is not None:
        ancestor = parent_number(ancestor)
        known = heading(ancestor) if ancestor else None
    if known is not None and not any(h.number.startswith(known.number + ".") for h in OUTLINE):
        add(s.line, _finding(
            "CPS-STRUCT-EXTRA", Severity.INFO, s.number,
            f"section {s.number} {s.title} (line {s.line}) is a sub-section the CPS adds below "
            f"{_describe(known)}",
            "nothing to do; sub-sections below the RFC 3647 outline are allowed",
            "RFC 3647 section 6"))
        return
    add(s.line, _finding(
        "CPS-STRUCT-EXTRA", Severity.WARNING, s.number,
        f"section {s.number} {s.title} (line {s.line}) is not in the RFC 3647 outline",
        "renumber it to the RFC 3647 section it belongs to, or make it a sub-section of one"
        " (e.g. 4.9.1.1 below 4.9.1)",
        "RFC 3647 section 6: the outline's numbering"))
