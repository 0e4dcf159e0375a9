"""What every HTML report iranpki writes shares for paper: the conformance report and the CPS
review are printed on A4 for a licensing file or an inspection, so nothing may run past the
right edge, and long words (case ids, URLs, base64) break rather than widen a column."""

from __future__ import annotations

__all__ = ["PAGE_CSS"]

PAGE_CSS = """
table { max-width: 100%; }
td { overflow-wrap: anywhere; }
@media print {
  @page { size: A4; margin: 12mm; }
  body { margin: 0; max-width: none; font-size: 9pt; }
  table { width: 100%; table-layout: fixed; page-break-inside: auto; }
  tr { page-break-inside: avoid; }
  th, td { padding: 2px 4px; }
  svg { max-width: 100%; height: auto; }
  h2 { page-break-after: avoid; }
}
"""
