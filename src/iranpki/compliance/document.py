"""Read a CPS written in Markdown into a :class:`~iranpki.compliance.model.CpsDocument`.

What is read:

- ATX headings (``#`` to ``######``, CommonMark 4.2) whose text starts with a section number:
  ``# 1. Introduction``, ``## 1.1 Overview``, ``### 4.9.7 CRL issuance frequency``. The number,
  not the count of ``#``, gives the depth; a trailing dot, colon or parenthesis after the number
  is allowed; Persian (۰-۹) and Arabic-Indic (٠-٩) digits are read as ASCII digits. Each
  component of a number has one or two digits, so a heading such as ``## 2026 changes`` is not
  a section.
- Headings inside fenced code blocks (CommonMark 4.5, ````` ``` ````` and ``~~~``) are text.
- A heading without a number before the first numbered one is the document's title; later ones
  are part of the body of the section they are in. Setext headings (underlined with ``===``)
  are not read as headings.
- The body of a section is everything from its heading to the next numbered heading, blank lines
  at either end removed.
- GFM pipe tables (GitHub Flavored Markdown spec, section 4.10) in a body become
  :attr:`Section.tables`: each a list of rows (header first, the delimiter row dropped), each row
  a list of stripped cell texts; ``\\|`` is a literal pipe inside a cell.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import ComplianceError
from .model import CpsDocument, Section

__all__ = ["parse_cps", "read_cps", "normalise_digits", "split_table_row"]

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_D = r"[0-9۰-۹٠-٩]{1,2}"
_NUMBERED = re.compile(rf"^(?:§\s*)?({_D}(?:\.{_D})*)[.:)]?(?:\s+(.*))?$")
_TAG = re.compile(r"<[^>]*>")
_DELIMITER_CELL = re.compile(r"^:?-+:?$")

_EXPECTED = ("a CPS in Markdown with ATX headings that start with the RFC 3647 section number, "
             "such as '# 1. Introduction', '## 1.2 Document name and identification' and "
             "'### 4.9.7 CRL issuance frequency'")


def normalise_digits(text: str) -> str:
    """Persian and Arabic-Indic digits as ASCII digits ("۴.۹.۷" -> "4.9.7")."""
    return text.translate(_DIGITS)


def _heading_number(content: str) -> tuple[str, str] | None:
    """(number, title) of a heading's text, or None when it does not start with a section number."""
    text = _TAG.sub("", content).strip()
    # Bold or italic around the whole heading ("## **1.2 Document name**") is decoration.
    text = text.strip("*_ \t")
    m = _NUMBERED.match(text)
    if not m:
        return None
    return normalise_digits(m.group(1)), (m.group(2) or "").strip().strip("*_ \t")


def split_table_row(line: str) -> list[str]:
    """The stripped cells of one pipe-table row; ``\\|`` is a pipe inside a cell."""
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells, cell, i = [], [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s) and s[i + 1] == "|":
            cell.append("|")
            i += 2
            continue
        if ch == "|":
            cells.append("".join(cell).strip())
            cell = []
        else:
            cell.append(ch)
        i += 1
    cells.append("".join(cell).strip())
    return cells


def _is_delimiter_row(line: str) -> bool:
    if "-" not in line:
        return False
    cells = split_table_row(line)
    return bool(cells) and all(_DELIMITER_CELL.match(c.replace(" ", "")) for c in cells)


def _tables(lines: list[str]) -> list[list[list[str]]]:
    """The GFM pipe tables among ``lines`` (the body of one section, outside code fences)."""
    return _tables_and_captions(lines)[0]


def _tables_and_captions(lines: list[str]) -> tuple[list[list[list[str]]], list[str]]:
    """The GFM pipe tables among ``lines``, and for each the un-numbered heading that is the last
    heading above it in the section ("" when none): real CPSs give one profile table per kind of
    certificate under headings such as "### TLS Subordinate CA Certificate Profile"."""
    tables: list[list[list[str]]] = []
    captions: list[str] = []
    caption = ""
    i = 0
    while i + 1 < len(lines):
        head, delim = lines[i], lines[i + 1]
        hm = _ATX.match(head)
        if hm:
            caption = _TAG.sub("", hm.group(2) or "").strip().strip("*_ ")
        if "|" in head and _is_delimiter_row(delim):
            header = split_table_row(head)
            # GFM 4.10: the delimiter row must have as many cells as the header row.
            if len(split_table_row(delim)) == len(header):
                rows = [header]
                j = i + 2
                while j < len(lines) and lines[j].strip() and "|" in lines[j]:
                    rows.append(split_table_row(lines[j]))
                    j += 1
                tables.append(rows)
                captions.append(caption)
                i = j
                continue
        i += 1
    return tables, captions


def parse_cps(text: str, path: str = "<text>") -> CpsDocument:
    """Cut a Markdown CPS at its numbered headings.

    Raises :class:`~iranpki.errors.ComplianceError` when the text has no numbered heading at all
    (it is not a CPS in the expected format)."""
    lines = text.splitlines()
    title = ""
    # (number, title, line index, body lines, body lines outside fences)
    found: list[tuple[str, str, int, list[str], list[str]]] = []
    fence: str | None = None
    for idx, line in enumerate(lines):
        in_code = fence is not None
        fm = _FENCE.match(line)
        if fence is None and fm and not (fm.group(1)[0] == "`" and "`" in fm.group(2)):
            fence, in_code = fm.group(1), True
        elif fence is not None and fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence) \
                and not fm.group(2).strip():
            fence = None
        if not in_code:
            hm = _ATX.match(line)
            if hm:
                numbered = _heading_number(hm.group(2) or "")
                if numbered is not None:
                    found.append((numbered[0], numbered[1], idx, [], []))
                    continue
                if not found and not title:
                    title = _TAG.sub("", hm.group(2) or "").strip()
                    continue
        if found:
            found[-1][3].append(line)
            if not in_code:
                found[-1][4].append(line)
            else:
                # Keep table rows of consecutive lines from joining across a code block.
                found[-1][4].append("")
    if not found:
        raise ComplianceError(f"{path}: no numbered heading found; expected {_EXPECTED}")
    sections = []
    for number, heading_title, idx, body, plain in found:
        tables, captions = _tables_and_captions(plain)
        sections.append(Section(number=number, title=heading_title, text="\n".join(body).strip("\n"),
                                tables=tables, line=idx + 1, captions=captions))
    return CpsDocument(path=path, title=title, sections=sections)


def read_cps(path: str) -> CpsDocument:
    """Read and parse the Markdown CPS at ``path`` (UTF-8, a byte order mark is allowed)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ComplianceError(f"cannot read the CPS {path}: {exc.strerror or exc}; give the path of "
                              "a Markdown CPS file") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ComplianceError(f"the CPS {path} is not UTF-8 (byte {exc.start} is 0x{data[exc.start]:02x}); "
                              "save it as UTF-8 Markdown and check again") from None
    doc = parse_cps(text, path)
    doc.sha256 = hashlib.sha256(data).hexdigest()  # the report names exactly the bytes reviewed
    return doc
