"""What a conformance case works with inside a worker: the loaded module and token, a logged-in
session, raw ``C_*`` calls through the module's function list, and the PKCS#11 return values by
name (PKCS#11 2.40 base section 3.6). The runner builds a :class:`Context` per worker; the case
modules take it; nothing here starts a process or loads a vendor module by itself."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from ..errors import TokenError
from .model import NotApplicable

__all__ = ["CKR", "CK_MECHANISM", "Context", "RawCryptoki", "ckr_name", "ckr_of"]

# PKCS#11 2.40 section 3.6 (pkcs11t.h): the return values the cases name.
CKR: dict[str, int] = {
    "CKR_OK": 0x0, "CKR_CANCEL": 0x1, "CKR_HOST_MEMORY": 0x2, "CKR_SLOT_ID_INVALID": 0x3,
    "CKR_GENERAL_ERROR": 0x5, "CKR_FUNCTION_FAILED": 0x6, "CKR_ARGUMENTS_BAD": 0x7,
    "CKR_ATTRIBUTE_READ_ONLY": 0x10, "CKR_ATTRIBUTE_SENSITIVE": 0x11, "CKR_ATTRIBUTE_TYPE_INVALID": 0x12,
    "CKR_ATTRIBUTE_VALUE_INVALID": 0x13, "CKR_ACTION_PROHIBITED": 0x1B, "CKR_DATA_INVALID": 0x20,
    "CKR_DATA_LEN_RANGE": 0x21, "CKR_DEVICE_ERROR": 0x30, "CKR_DEVICE_MEMORY": 0x31,
    "CKR_ENCRYPTED_DATA_INVALID": 0x40, "CKR_ENCRYPTED_DATA_LEN_RANGE": 0x41,
    "CKR_FUNCTION_NOT_SUPPORTED": 0x54, "CKR_KEY_HANDLE_INVALID": 0x60, "CKR_KEY_SIZE_RANGE": 0x62,
    "CKR_KEY_TYPE_INCONSISTENT": 0x63, "CKR_KEY_FUNCTION_NOT_PERMITTED": 0x68, "CKR_KEY_NOT_WRAPPABLE": 0x69,
    "CKR_KEY_UNEXTRACTABLE": 0x6A, "CKR_MECHANISM_INVALID": 0x70, "CKR_MECHANISM_PARAM_INVALID": 0x71,
    "CKR_OBJECT_HANDLE_INVALID": 0x82, "CKR_OPERATION_ACTIVE": 0x90, "CKR_OPERATION_NOT_INITIALIZED": 0x91,
    "CKR_PIN_INCORRECT": 0xA0, "CKR_PIN_INVALID": 0xA1, "CKR_PIN_LEN_RANGE": 0xA2, "CKR_PIN_LOCKED": 0xA4,
    "CKR_SESSION_CLOSED": 0xB0, "CKR_SESSION_HANDLE_INVALID": 0xB3, "CKR_SESSION_READ_ONLY": 0xB5,
    "CKR_SESSION_READ_ONLY_EXISTS": 0xB7,
    "CKR_SIGNATURE_INVALID": 0xC0, "CKR_SIGNATURE_LEN_RANGE": 0xC1, "CKR_TEMPLATE_INCOMPLETE": 0xD0,
    "CKR_TEMPLATE_INCONSISTENT": 0xD1, "CKR_TOKEN_NOT_PRESENT": 0xE0, "CKR_TOKEN_WRITE_PROTECTED": 0xE2,
    "CKR_UNWRAPPING_KEY_HANDLE_INVALID": 0xF0, "CKR_USER_ALREADY_LOGGED_IN": 0x100,
    "CKR_USER_NOT_LOGGED_IN": 0x101, "CKR_USER_PIN_NOT_INITIALIZED": 0x102, "CKR_USER_TYPE_INVALID": 0x103,
    "CKR_USER_ANOTHER_ALREADY_LOGGED_IN": 0x104,
    "CKR_WRAPPED_KEY_INVALID": 0x110, "CKR_WRAPPED_KEY_LEN_RANGE": 0x112,
    "CKR_WRAPPING_KEY_HANDLE_INVALID": 0x113, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT": 0x115,
    "CKR_RANDOM_NO_RNG": 0x121, "CKR_DOMAIN_PARAMS_INVALID": 0x130, "CKR_CURVE_NOT_SUPPORTED": 0x140,
    "CKR_BUFFER_TOO_SMALL": 0x150, "CKR_CRYPTOKI_NOT_INITIALIZED": 0x190,
    "CKR_CRYPTOKI_ALREADY_INITIALIZED": 0x191,
}
_CKR_NAMES = {v: k for k, v in CKR.items()}


def ckr_name(rv: int) -> str:
    """The CKR_ name of a return value, or its hex for values the table lacks (vendor codes)."""
    return _CKR_NAMES.get(rv, f"CKR_0x{rv:X}")


# The CK_FUNCTION_LIST of PKCS#11 2.40 section 5.2, in order: raw calls go through it rather than
# exported symbols, because a module (or a fault-injection shim) need export only C_GetFunctionList.
_FUNCTIONS = (
    "C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo C_GetTokenInfo "
    "C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession C_CloseSession "
    "C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login C_Logout "
    "C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue "
    "C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate "
    "C_EncryptFinal C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest "
    "C_DigestUpdate C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit "
    "C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover "
    "C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate C_GenerateKey "
    "C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom C_GenerateRandom "
    "C_GetFunctionStatus C_CancelFunction C_WaitForSlotEvent"
).split()


class CK_MECHANISM(ctypes.Structure):  # noqa: N801 - the name PKCS#11 gives it
    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p),
                ("ulParameterLen", ctypes.c_ulong)]


class RawCryptoki:
    """Direct calls into the module through its function list, for cases that must see the exact
    CK_RV (python-pkcs11 turns return values into exceptions and sizes buffers itself).

    The module is the one python-pkcs11 loaded (``dlopen`` returns the same library), so session
    and object handles from python-pkcs11 are valid here.
    """

    def __init__(self, path: str):
        self._dll = ctypes.CDLL(path)
        table = ctypes.POINTER(ctypes.c_void_p)()
        rv = self._dll.C_GetFunctionList(ctypes.byref(table))
        if rv != 0:
            raise TokenError(f"C_GetFunctionList of {path} returned {ckr_name(rv)}")
        # The list opens with a CK_VERSION (2 bytes) padded to pointer alignment.
        base = ctypes.cast(table, ctypes.c_void_p).value or 0
        size = ctypes.sizeof(ctypes.c_void_p)
        pointers = (ctypes.c_void_p * len(_FUNCTIONS)).from_address(base + size)
        proto = ctypes.CFUNCTYPE(ctypes.c_ulong)
        self._fn = {name: proto(pointers[i]) for i, name in enumerate(_FUNCTIONS)}

    def __call__(self, name: str, *args: Any) -> int:
        """Call ``name`` with ctypes arguments (wrap integers in ``c_ulong``); return the CK_RV."""
        return int(self._fn[name](*args))

    @staticmethod
    def mechanism(mech: int, param: bytes | None = None) -> CK_MECHANISM:
        buf = ctypes.create_string_buffer(param, len(param)) if param else None
        m = CK_MECHANISM(mech, ctypes.cast(buf, ctypes.c_void_p) if buf else None, len(param) if param else 0)
        m._keep = buf  # type: ignore[attr-defined]  # the parameter must outlive the struct
        return m


class _Closer:
    """Adapts a session to the ``destroy()`` that :meth:`Context.cleanup` calls."""

    def __init__(self, session: Any):
        self.session = session

    def destroy(self) -> None:
        self.session.close()


@dataclass
class Context:
    """What a case gets inside the worker: the loaded module, the token and a logged-in session.

    ``session`` is read-write and logged in as the user. Objects a case creates through
    :meth:`track` are destroyed after the case, so a run leaves the token as it found it.
    """

    lib: Any  # pkcs11.lib
    token: Any  # pkcs11.Token
    session: Any  # pkcs11.Session, logged in
    user_pin: str
    so_pin: str | None
    mechanisms: frozenset[str]
    module_path: str
    token_label: str
    raw: RawCryptoki
    created: list[Any] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    # Set by a case that left the token unusable for the rest of the run (a user PIN it could
    # not put back): why, in one sentence. The run then judges no more cases on this token.
    lost: str | None = None

    def need(self, *mechanisms: str) -> None:
        """Raise NotApplicable unless the device claims every mechanism (C_GetMechanismList)."""
        missing = [m for m in mechanisms if m not in self.mechanisms]
        if missing:
            raise NotApplicable(f"the device does not claim {', '.join(missing)} in C_GetMechanismList")

    def track(self, *objects: Any) -> None:
        """Destroy these objects after the case (token objects would otherwise stay behind)."""
        self.created.extend(objects)

    def fresh_session(self, rw: bool = True) -> Any:
        """Another session of this process (so logged in), closed after the case: raw calls that
        start operations use one, so an operation a device leaves active dies with it."""
        s = self.token.open(rw=rw)
        self.created.insert(0, _Closer(s))
        return s

    def cleanup(self) -> None:
        for obj in reversed(self.created):
            try:
                obj.destroy()
            except Exception:  # noqa: BLE001 - already gone (destroyed by the case, session closed)
                pass
        self.created.clear()

    def relogin(self) -> None:
        """A fresh logged-in session, after a case that closed every session or logged out."""
        import pkcs11

        try:
            self.session.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.cache.clear()  # session objects (the cached keys) died with the session
        try:
            self.session = self.token.open(rw=True, user_pin=self.user_pin)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            self.session = self.token.open(rw=True)


# python-pkcs11 names its exceptions after the PKCS#11 return values, in CamelCase; these six
# are spelt otherwise (British spelling, acronyms, a word moved).
_EXCEPTION_CKR = {
    "FunctionCancelled": "CKR_FUNCTION_CANCELED", "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "SessionReadWriteSOExists": "CKR_SESSION_READ_WRITE_SO_EXISTS", "SlotIDInvalid": "CKR_SLOT_ID_INVALID",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
    "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
}
# ... and these five it raises as a plain PKCS11Error with a sentence.
_MESSAGE_CKR = {
    "Buffer was too small": "CKR_BUFFER_TOO_SMALL", "(already initialized)": "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    "(not initialized)": "CKR_CRYPTOKI_NOT_INITIALIZED", "Parallel not supported": "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
    "User type invalid": "CKR_USER_TYPE_INVALID",
}


def ckr_of(exc: BaseException) -> str:
    """The return value a python-pkcs11 exception stands for, as PKCS#11 names it:
    ``AttributeTypeInvalid`` -> ``CKR_ATTRIBUTE_TYPE_INVALID``; a value python-pkcs11 does not
    map ("Unmapped error code 0x...") by its number."""
    import re

    name = type(exc).__name__
    if name in _EXCEPTION_CKR:
        return _EXCEPTION_CKR[name]
    if name == "PKCS11Error":
        text = str(exc)
        unmapped = re.search(r"0x([0-9a-fA-F]+)", text)
        if unmapped:
            return ckr_name(int(unmapped.group(1), 16))
        return next((rv for words, rv in _MESSAGE_CKR.items() if words in text), "an error python-pkcs11 does not name")
    return "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
