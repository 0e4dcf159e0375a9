"""Print the RA API's OpenAPI 3.1 document: ``python -m iranpki_portals.openapi > docs/ra-openapi.json``."""

from __future__ import annotations

import json
import sys

from .serve import openapi_document

if __name__ == "__main__":
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n")
