"""The cases of the suite: which modules register them, and the plugins a lab adds (recorded
in the report with their SHA-256, and refused for an approval)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

__all__ = ["CASE_MODULES", "load_cases", "plugin_identity"]

#: The worker's modules that register cases; plugins (tests, lab extensions) add their own.
CASE_MODULES = ("iranpki.conformance.cases_functional", "iranpki.conformance.cases_security",
                "iranpki.conformance.cases_stability", "iranpki.conformance.cases_performance",
                "iranpki.conformance.cases_functional_more")


def plugin_identity(name: str) -> dict[str, str]:
    """A plugin as the report records it: its path or module name and the SHA-256 of its source."""
    path = Path(name) if name.endswith(".py") else None
    if path is None:
        spec = importlib.util.find_spec(name)
        path = Path(spec.origin) if spec is not None and spec.origin else None
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else "unknown"
    return {"plugin": name, "path": str(path.resolve()) if path is not None else "", "sha256": digest}


def _import_plugin(name: str) -> None:
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(name).stem, name)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import case plugin {name}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    else:
        importlib.import_module(name)


def load_cases(plugins: Iterable[str] = ()) -> None:
    """Import the suite's case modules and ``plugins`` so that their cases are registered.

    Importing python-pkcs11 does not load a vendor module, so the parent may do this safely.
    """
    for name in (*CASE_MODULES, *plugins):
        if name.endswith(".py") and Path(name).stem in sys.modules:
            continue
        _import_plugin(name)
