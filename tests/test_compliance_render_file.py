"""`policies/national-cp.md` is the national CP as `iranpki cps render` writes it, committed so that
people can read the CP without running anything. It must stay exactly what the CP data gives.

The file is read from the checkout, never from the installed package: it is a document of the
repository, and whether the wheel ships it (pyproject's ``iranpki._data`` package data ships
``policies/*.yaml`` only) does not matter here."""

from __future__ import annotations

import difflib
from pathlib import Path

from iranpki.compliance.render import render_cp
from iranpki.policy import load_policy

RENDERED = Path(__file__).resolve().parents[1] / "policies" / "national-cp.md"
REGENERATE = "iranpki cps render --out policies/national-cp.md"


def test_committed_cp_document_is_the_rendered_cp() -> None:
    assert RENDERED.is_file(), f"{RENDERED} is missing; run `{REGENERATE}` and commit it"
    # newline="" keeps the bytes as they are, so a file with CRLF line ends is stale too.
    with open(RENDERED, encoding="utf-8", newline="") as f:
        committed = f.read()
    expected = render_cp(load_policy())
    if committed != expected:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(keepends=True),
                                                 expected.splitlines(keepends=True),
                                                 "policies/national-cp.md (committed)",
                                                 "iranpki cps render (from the CP data)", n=1))[:40])
        raise AssertionError(f"policies/national-cp.md is stale: it differs from what the national CP data "
                             f"renders to. Run `{REGENERATE}` and commit the result. First differences:\n{diff}")
