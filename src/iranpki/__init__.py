"""iranpki: a certificate-authority toolkit for Iran's national public key infrastructure.

The library never imports click, rich or an HTTP framework; clients (the ``iranpki`` command,
later the portals) parse input, call one function here, and present the result.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("iranpki")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
