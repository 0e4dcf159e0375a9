"""PKCS#11 URIs (RFC 7512): ``pkcs11:token=CA%20Token;object=root-key?module-path=/usr/lib/x.so``.

Only the attributes iranpki acts on are kept; the rest are accepted and ignored as RFC 7512
section 2.3 asks. ``pin-value`` is refused: a PIN in a URI ends up in shell history, in
``ps`` and in logs. ``pin-source`` (a file) is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from ..errors import ConfigError
from ..names import check_text

__all__ = ["Pkcs11Uri"]

_PATH_ATTRS = {"token", "object", "id", "type", "manufacturer", "model", "serial",
               "library-manufacturer", "library-description", "library-version", "slot-id",
               "slot-description", "slot-manufacturer"}
_QUERY_ATTRS = {"module-path", "module-name", "pin-source", "pin-value"}


@dataclass(frozen=True)
class Pkcs11Uri:
    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    serial: str | None = None
    module_path: str | None = None
    pin_source: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        if not text.startswith("pkcs11:"):
            raise ConfigError(f"{text!r} is not a PKCS#11 URI; expected pkcs11:token=LABEL;object=KEY (RFC 7512)")
        body = text[len("pkcs11:"):]
        path, _, query = body.partition("?")
        fields: dict[str, bytes] = {}
        for part, sep, allowed in ((path, ";", _PATH_ATTRS), (query, "&", _QUERY_ATTRS)):
            for item in filter(None, part.split(sep)):
                name, eq, value = item.partition("=")
                if not eq:
                    raise ConfigError(f"PKCS#11 URI attribute {item!r} has no value; write name=value")
                if name not in allowed and not name.startswith("x-"):
                    raise ConfigError(
                        f"unknown PKCS#11 URI attribute {name!r}; expected one of {', '.join(sorted(allowed))}"
                    )
                if name in fields:
                    raise ConfigError(f"PKCS#11 URI attribute {name!r} appears twice (RFC 7512 2.3 forbids it)")
                fields[name] = unquote_to_bytes(value)
        if "pin-value" in fields:
            raise ConfigError(
                "PKCS#11 URI holds pin-value; a PIN must never be written in a URI or an argument. "
                "Set it in the environment (IRANPKI_PKCS11_PIN) or use pin-source=FILE"
            )
        if fields.get("type", b"private") not in (b"private", b"public", b"cert", b"secret-key", b"data"):
            raise ConfigError(f"PKCS#11 URI type {fields['type']!r} must be private, public, cert, secret-key or data")

        def text_of(name: str) -> str | None:
            raw = fields.get(name)
            if raw is None:
                return None
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"PKCS#11 URI attribute {name} is not UTF-8 after percent-decoding") from None
            # A label reaches the module as a C string: no control character (NUL above all).
            return check_text(value, f"PKCS#11 URI attribute {name}")

        return cls(token=text_of("token"), object=text_of("object"), id=fields.get("id"),
                   type=text_of("type"), serial=text_of("serial"),
                   module_path=text_of("module-path"), pin_source=text_of("pin-source"))

    def pin_source_path(self) -> str:
        """The file ``pin-source`` names: a path, or a ``file:`` URI (RFC 7512 2.4 and RFC 8089).
        Anything else (another URI scheme, a ``|command``) is refused: iranpki reads PINs from
        files it can name in an error, nothing else."""
        src = self.pin_source or ""
        if src.startswith("file:"):
            parsed = urlsplit(src)
            if parsed.netloc not in ("", "localhost"):
                raise ConfigError(f"pin-source {src!r} names a file on host {parsed.netloc!r}; give a local file")
            return unquote(parsed.path)
        if not src or ":" in src.split("/", 1)[0] or src.startswith("|"):
            raise ConfigError(f"pin-source {src!r} is not a file; give a path or a file: URI, "
                              "e.g. pin-source=/run/secrets/gica-pin")
        return src

    def __str__(self) -> str:
        path = []
        if self.token is not None:
            path.append("token=" + quote(self.token, safe=""))
        if self.object is not None:
            path.append("object=" + quote(self.object, safe=""))
        if self.id is not None:
            path.append("id=" + "".join(f"%{b:02X}" for b in self.id))
        if self.type is not None:
            path.append("type=" + self.type)
        if self.serial is not None:
            path.append("serial=" + quote(self.serial, safe=""))
        query = []
        if self.module_path is not None:
            query.append("module-path=" + quote(self.module_path, safe="/"))
        if self.pin_source is not None:
            query.append("pin-source=" + quote(self.pin_source, safe="/"))
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")
