/*
 * A PKCS#11 module that wraps a real one (SoftHSM2 by default) and injects one fault at a time,
 * so the conformance suite can be shown to fail a faulty device (issue 5, "Proof that it judges").
 *
 * Environment:
 *   FAULTSHIM_MODULE   the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   FAULTSHIM_FAULT    one of the faults below; unset or empty = pass-through
 *   FAULTSHIM_SLOW_MS  the delay of the "slow" fault in milliseconds (default 50)
 *   FAULTSHIM_MAX_SESSIONS  a small device, not a faulty one: C_GetTokenInfo declares this many
 *                      sessions (ulMaxSessionCount, ulMaxRwSessionCount; ulSessionCount and
 *                      ulRwSessionCount are this process's) and C_OpenSession refuses more with
 *                      CKR_SESSION_COUNT
 *   FAULTSHIM_MAX_RSA_BITS  likewise: C_GetMechanismInfo(CKM_RSA_PKCS_KEY_PAIR_GEN) declares at
 *                      most this many bits and C_GenerateKeyPair refuses larger with
 *                      CKR_KEY_SIZE_RANGE
 *
 * Faults:
 *   corrupt_signature      C_Sign / C_SignFinal: one byte of the signature flipped
 *   extractable_sensitive  C_GetAttributeValue: sensitive secrets (CKA_VALUE, CKA_PRIVATE_EXPONENT,
 *                          primes...) read back as fake bytes with CKR_OK instead of
 *                          CKR_ATTRIBUTE_SENSITIVE; CKA_EXTRACTABLE reads true, CKA_NEVER_EXTRACTABLE false
 *   verify_accepts_all     C_Verify / C_VerifyFinal: CKR_OK for any signature
 *   repeat_random          C_GenerateRandom: the same bytes on every call (the first call's output)
 *   wrong_rv               error paths answer CKR_GENERAL_ERROR: C_Login with a wrong PIN (instead of
 *                          CKR_PIN_INCORRECT), C_SignInit with a key or mechanism that cannot sign
 *                          (instead of CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_TYPE_INCONSISTENT,
 *                          CKR_MECHANISM_INVALID, CKR_KEY_HANDLE_INVALID), and any call on a
 *                          closed session handle (instead of CKR_SESSION_HANDLE_INVALID)
 *   crash_sign             C_Sign: abort()
 *   hang_sign              C_Sign: never returns
 *   slow                   C_Sign, C_SignFinal, C_Digest, C_DigestFinal, C_Verify: sleep
 *                          FAULTSHIM_SLOW_MS before the real call (only the call that produces
 *                          output, not the length query with a NULL buffer)
 *   leak_handles           C_CloseSession answers CKR_OK but closes nothing: the handle stays valid,
 *                          its session objects stay on the token, handles are never reused
 *   session_drag           C_Sign sleeps 2 ms for each session this process has open beyond the
 *                          first: a device that slows down as an application opens sessions
 *
 * Only C_GetFunctionList is exported: python-pkcs11, pkcs11-tool and p11-kit resolve that symbol
 * alone and call everything through the list.
 *
 * The types are written out here (PKCS#11 v2.40, pkcs11t.h / pkcs11f.h) so the tests need no
 * header package. The function list is the version followed by the 68 function pointers in the
 * order of pkcs11f.h; the shim only needs their positions, so it keeps them as an array.
 *
 * Build: gcc -shared -fPIC -O2 -o libfaultshim.so pkcs11_fault_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_USER_TYPE;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;
typedef unsigned char CK_BYTE;
typedef CK_BYTE CK_BBOOL;

typedef struct { CK_BYTE major, minor; } CK_VERSION;
typedef struct { CK_ATTRIBUTE_TYPE type; void *pValue; CK_ULONG ulValueLen; } CK_ATTRIBUTE;
typedef struct { CK_ULONG mechanism; void *pParameter; CK_ULONG ulParameterLen; } CK_MECHANISM;

#define N_FUNCTIONS 68
typedef struct {
    CK_VERSION version;
    void *fn[N_FUNCTIONS];
} CK_FUNCTION_LIST;

/* Positions in CK_FUNCTION_LIST (pkcs11f.h order, counted from C_Initialize = 0). */
enum {
    F_Initialize = 0, F_Finalize, F_GetInfo, F_GetFunctionList, F_GetSlotList, F_GetSlotInfo,
    F_GetTokenInfo, F_GetMechanismList, F_GetMechanismInfo, F_InitToken, F_InitPIN, F_SetPIN,
    F_OpenSession, F_CloseSession, F_CloseAllSessions, F_GetSessionInfo, F_GetOperationState,
    F_SetOperationState, F_Login, F_Logout, F_CreateObject, F_CopyObject, F_DestroyObject,
    F_GetObjectSize, F_GetAttributeValue, F_SetAttributeValue, F_FindObjectsInit, F_FindObjects,
    F_FindObjectsFinal, F_EncryptInit, F_Encrypt, F_EncryptUpdate, F_EncryptFinal, F_DecryptInit,
    F_Decrypt, F_DecryptUpdate, F_DecryptFinal, F_DigestInit, F_Digest, F_DigestUpdate,
    F_DigestKey, F_DigestFinal, F_SignInit, F_Sign, F_SignUpdate, F_SignFinal, F_SignRecoverInit,
    F_SignRecover, F_VerifyInit, F_Verify, F_VerifyUpdate, F_VerifyFinal, F_VerifyRecoverInit,
    F_VerifyRecover, F_DigestEncryptUpdate, F_DecryptDigestUpdate, F_SignEncryptUpdate,
    F_DecryptVerifyUpdate, F_GenerateKey, F_GenerateKeyPair, F_WrapKey, F_UnwrapKey, F_DeriveKey,
    F_SeedRandom, F_GenerateRandom, F_GetFunctionStatus, F_CancelFunction, F_WaitForSlotEvent,
    F_COUNT
};
_Static_assert(F_COUNT == N_FUNCTIONS, "PKCS#11 v2.40 has 68 functions");

#define CKR_OK 0x00UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_ARGUMENTS_BAD 0x07UL
#define CKR_ATTRIBUTE_SENSITIVE 0x11UL
#define CKR_KEY_HANDLE_INVALID 0x60UL
#define CKR_KEY_SIZE_RANGE 0x62UL
#define CKR_SESSION_COUNT 0xB1UL
#define CKR_KEY_TYPE_INCONSISTENT 0x63UL
#define CKR_KEY_FUNCTION_NOT_PERMITTED 0x68UL
#define CKR_MECHANISM_INVALID 0x70UL
#define CKR_PIN_INCORRECT 0xA0UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_SIGNATURE_INVALID 0xC0UL
#define CKR_SIGNATURE_LEN_RANGE 0xC1UL

#define CKA_VALUE 0x011UL
#define CKA_PRIVATE_EXPONENT 0x123UL
#define CKA_PRIME_1 0x124UL
#define CKA_PRIME_2 0x125UL
#define CKA_EXPONENT_1 0x126UL
#define CKA_EXPONENT_2 0x127UL
#define CKA_COEFFICIENT 0x128UL
#define CKA_MODULUS_BITS 0x121UL
#define CKA_EXTRACTABLE 0x162UL
#define CKA_NEVER_EXTRACTABLE 0x164UL
#define CK_UNAVAILABLE_INFORMATION (~0UL)

typedef CK_RV (*get_function_list_fn)(CK_FUNCTION_LIST **);

enum fault {
    NONE, CORRUPT_SIGNATURE, EXTRACTABLE_SENSITIVE, VERIFY_ACCEPTS_ALL, REPEAT_RANDOM, WRONG_RV,
    CRASH_SIGN, HANG_SIGN, SLOW, LEAK_HANDLES, SESSION_DRAG
};
static const char *const fault_names[] = {
    "", "corrupt_signature", "extractable_sensitive", "verify_accepts_all", "repeat_random",
    "wrong_rv", "crash_sign", "hang_sign", "slow", "leak_handles", "session_drag"
};

static CK_FUNCTION_LIST *real;      /* the real module's list */
static CK_FUNCTION_LIST shim;       /* our copy, with some entries replaced */
static enum fault fault = NONE;
static long slow_ms = 50;
static volatile long open_sessions; /* session_drag, the session limit: this process's open sessions */
static volatile long open_rw_sessions;
static long max_sessions;           /* FAULTSHIM_MAX_SESSIONS, 0 = the real module's */
static long max_rsa_bits;           /* FAULTSHIM_MAX_RSA_BITS, 0 = the real module's */

#define REAL(name, type) ((type)real->fn[F_##name])

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- corrupt_signature, crash_sign, hang_sign, slow ---- */

typedef CK_RV (*sign_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *, CK_ULONG *);
typedef CK_RV (*final_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG *);

static void corrupt(CK_BYTE *out, CK_ULONG *len) {
    if (out != NULL && len != NULL && *len > 0)
        out[*len / 2] ^= 0x01;
}

static CK_RV shim_Sign(CK_SESSION_HANDLE s, CK_BYTE *data, CK_ULONG n, CK_BYTE *sig, CK_ULONG *len) {
    if (fault == CRASH_SIGN)
        abort();
    if (fault == HANG_SIGN)
        for (;;)
            pause();
    if (fault == SLOW && sig != NULL)
        pause_ms(slow_ms);
    if (fault == SESSION_DRAG && sig != NULL && open_sessions > 1)
        pause_ms(2 * (open_sessions - 1));
    CK_RV rv = REAL(Sign, sign_fn)(s, data, n, sig, len);
    if (fault == CORRUPT_SIGNATURE && rv == CKR_OK)
        corrupt(sig, len);
    return rv;
}

static CK_RV shim_SignFinal(CK_SESSION_HANDLE s, CK_BYTE *sig, CK_ULONG *len) {
    if (fault == SLOW && sig != NULL)
        pause_ms(slow_ms);
    CK_RV rv = REAL(SignFinal, final_fn)(s, sig, len);
    if (fault == CORRUPT_SIGNATURE && rv == CKR_OK)
        corrupt(sig, len);
    return rv;
}

static CK_RV shim_Digest(CK_SESSION_HANDLE s, CK_BYTE *data, CK_ULONG n, CK_BYTE *out, CK_ULONG *len) {
    if (fault == SLOW && out != NULL)
        pause_ms(slow_ms);
    return REAL(Digest, sign_fn)(s, data, n, out, len);
}

static CK_RV shim_DigestFinal(CK_SESSION_HANDLE s, CK_BYTE *out, CK_ULONG *len) {
    if (fault == SLOW && out != NULL)
        pause_ms(slow_ms);
    return REAL(DigestFinal, final_fn)(s, out, len);
}

/* ---- verify_accepts_all (and slow) ---- */

typedef CK_RV (*verify_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *, CK_ULONG);
typedef CK_RV (*verify_final_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG);

static CK_RV accept_bad(CK_RV rv) {
    if (fault == VERIFY_ACCEPTS_ALL && (rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE))
        return CKR_OK;
    return rv;
}

static CK_RV shim_Verify(CK_SESSION_HANDLE s, CK_BYTE *data, CK_ULONG n, CK_BYTE *sig, CK_ULONG len) {
    if (fault == SLOW)
        pause_ms(slow_ms);
    return accept_bad(REAL(Verify, verify_fn)(s, data, n, sig, len));
}

static CK_RV shim_VerifyFinal(CK_SESSION_HANDLE s, CK_BYTE *sig, CK_ULONG len) {
    return accept_bad(REAL(VerifyFinal, verify_final_fn)(s, sig, len));
}

/* ---- extractable_sensitive ---- */

typedef CK_RV (*attr_fn)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE *, CK_ULONG);

static int is_secret(CK_ATTRIBUTE_TYPE t) {
    return t == CKA_VALUE || t == CKA_PRIVATE_EXPONENT || t == CKA_PRIME_1 || t == CKA_PRIME_2 ||
           t == CKA_EXPONENT_1 || t == CKA_EXPONENT_2 || t == CKA_COEFFICIENT;
}

#define FAKE_SECRET_LEN 32

static CK_RV shim_GetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t, CK_ULONG n) {
    CK_RV rv = REAL(GetAttributeValue, attr_fn)(s, o, t, n);
    if (fault != EXTRACTABLE_SENSITIVE || t == NULL)
        return rv;
    int still_bad = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE *a = &t[i];
        if (a->type == CKA_EXTRACTABLE && a->pValue != NULL && a->ulValueLen == sizeof(CK_BBOOL))
            *(CK_BBOOL *)a->pValue = 1;
        else if (a->type == CKA_NEVER_EXTRACTABLE && a->pValue != NULL && a->ulValueLen == sizeof(CK_BBOOL))
            *(CK_BBOOL *)a->pValue = 0;
        else if (a->ulValueLen == CK_UNAVAILABLE_INFORMATION && rv == CKR_ATTRIBUTE_SENSITIVE &&
                 is_secret(a->type)) {
            /* A "sensitive" secret handed out: the fault a lab must never miss. */
            if (a->pValue != NULL)
                memset(a->pValue, 0x5A, FAKE_SECRET_LEN);
            a->ulValueLen = FAKE_SECRET_LEN;
        } else if (a->ulValueLen == CK_UNAVAILABLE_INFORMATION) {
            still_bad = 1;
        }
    }
    if (rv == CKR_ATTRIBUTE_SENSITIVE && !still_bad)
        return CKR_OK;
    return rv;
}

/* ---- repeat_random ---- */

typedef CK_RV (*random_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG);

static CK_BYTE first_random[4096];
static CK_ULONG first_random_len;

static CK_RV shim_GenerateRandom(CK_SESSION_HANDLE s, CK_BYTE *out, CK_ULONG n) {
    if (fault != REPEAT_RANDOM || out == NULL || n == 0)
        return REAL(GenerateRandom, random_fn)(s, out, n);
    if (first_random_len == 0) {
        CK_RV rv = REAL(GenerateRandom, random_fn)(s, first_random, sizeof first_random);
        if (rv != CKR_OK)
            return rv;
        first_random_len = sizeof first_random;
    }
    for (CK_ULONG i = 0; i < n; i++)
        out[i] = first_random[i % first_random_len];
    return CKR_OK;
}

/* ---- wrong_rv ---- */

typedef CK_RV (*login_fn)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_BYTE *, CK_ULONG);
typedef CK_RV (*sign_init_fn)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE);
typedef CK_RV (*session_info_fn)(CK_SESSION_HANDLE, void *);

static CK_RV shim_Login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_BYTE *pin, CK_ULONG n) {
    CK_RV rv = REAL(Login, login_fn)(s, u, pin, n);
    if (fault == WRONG_RV && (rv == CKR_PIN_INCORRECT || rv == CKR_SESSION_HANDLE_INVALID))
        return CKR_GENERAL_ERROR;
    return rv;
}

static CK_RV shim_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE k) {
    CK_RV rv = REAL(SignInit, sign_init_fn)(s, m, k);
    if (fault == WRONG_RV &&
        (rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT ||
         rv == CKR_MECHANISM_INVALID || rv == CKR_KEY_HANDLE_INVALID || rv == CKR_SESSION_HANDLE_INVALID))
        return CKR_GENERAL_ERROR;
    return rv;
}

static CK_RV shim_GetSessionInfo(CK_SESSION_HANDLE s, void *info) {
    CK_RV rv = REAL(GetSessionInfo, session_info_fn)(s, info);
    if (fault == WRONG_RV && rv == CKR_SESSION_HANDLE_INVALID)
        return CKR_GENERAL_ERROR;
    return rv;
}

/* ---- leak_handles, session_drag ---- */

typedef CK_RV (*close_fn)(CK_SESSION_HANDLE);
typedef CK_RV (*close_all_fn)(CK_SLOT_ID);
typedef CK_RV (*open_fn)(CK_SLOT_ID, CK_FLAGS, void *, void *, CK_SESSION_HANDLE *);

#define CKF_RW_SESSION 0x2UL

static CK_RV shim_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, void *notify, CK_SESSION_HANDLE *out) {
    if (max_sessions > 0 && open_sessions >= max_sessions)
        return CKR_SESSION_COUNT;
    CK_RV rv = REAL(OpenSession, open_fn)(slot, flags, app, notify, out);
    if (rv == CKR_OK) {
        __sync_add_and_fetch(&open_sessions, 1);
        if (flags & CKF_RW_SESSION)
            __sync_add_and_fetch(&open_rw_sessions, 1);
    }
    return rv;
}

/* ---- FAULTSHIM_MAX_SESSIONS, FAULTSHIM_MAX_RSA_BITS: a small device that says so ---- */

typedef struct {
    char text[96]; /* label, manufacturerID, model, serialNumber */
    CK_FLAGS flags;
    CK_ULONG ulMaxSessionCount, ulSessionCount, ulMaxRwSessionCount, ulRwSessionCount;
    CK_ULONG rest[6];
    CK_VERSION hardwareVersion, firmwareVersion;
    char utcTime[16];
} CK_TOKEN_INFO;
typedef struct { CK_ULONG ulMinKeySize, ulMaxKeySize; CK_FLAGS flags; } CK_MECHANISM_INFO;
typedef CK_RV (*token_info_fn)(CK_SLOT_ID, CK_TOKEN_INFO *);
typedef CK_RV (*mech_info_fn)(CK_SLOT_ID, CK_ULONG, CK_MECHANISM_INFO *);
typedef CK_RV (*keypair_fn)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_ATTRIBUTE *, CK_ULONG, CK_ATTRIBUTE *, CK_ULONG,
                            CK_OBJECT_HANDLE *, CK_OBJECT_HANDLE *);
#define CKM_RSA_PKCS_KEY_PAIR_GEN 0x0UL

static CK_RV shim_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO *info) {
    CK_RV rv = REAL(GetTokenInfo, token_info_fn)(slot, info);
    if (rv == CKR_OK && max_sessions > 0) {
        info->ulMaxSessionCount = info->ulMaxRwSessionCount = (CK_ULONG)max_sessions;
        info->ulSessionCount = (CK_ULONG)open_sessions;
        info->ulRwSessionCount = (CK_ULONG)open_rw_sessions;
    }
    return rv;
}

static CK_RV shim_GetMechanismInfo(CK_SLOT_ID slot, CK_ULONG mech, CK_MECHANISM_INFO *info) {
    CK_RV rv = REAL(GetMechanismInfo, mech_info_fn)(slot, mech, info);
    if (rv == CKR_OK && max_rsa_bits > 0 && mech == CKM_RSA_PKCS_KEY_PAIR_GEN)
        info->ulMaxKeySize = (CK_ULONG)max_rsa_bits;
    return rv;
}

static CK_RV shim_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_ATTRIBUTE *pub, CK_ULONG npub,
                                  CK_ATTRIBUTE *priv, CK_ULONG npriv, CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv) {
    if (max_rsa_bits > 0 && m != NULL && m->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN && pub != NULL)
        for (CK_ULONG i = 0; i < npub; i++)
            if (pub[i].type == CKA_MODULUS_BITS && pub[i].pValue != NULL &&
                pub[i].ulValueLen == sizeof(CK_ULONG) && *(CK_ULONG *)pub[i].pValue > (CK_ULONG)max_rsa_bits)
                return CKR_KEY_SIZE_RANGE;
    return REAL(GenerateKeyPair, keypair_fn)(s, m, pub, npub, priv, npriv, hpub, hpriv);
}

static CK_RV shim_CloseSession(CK_SESSION_HANDLE s) {
    if (fault == LEAK_HANDLES) {
        /* Say the session is closed and keep it: its handle stays valid and its objects stay. */
        return CKR_OK;
    }
    CK_ULONG session_info[4] = {0}; /* CK_SESSION_INFO: slotID, state, flags, ulDeviceError */
    int rw = REAL(GetSessionInfo, session_info_fn)(s, session_info) == CKR_OK && (session_info[2] & CKF_RW_SESSION);
    CK_RV rv = REAL(CloseSession, close_fn)(s);
    if (rv == CKR_OK) {
        __sync_sub_and_fetch(&open_sessions, 1);
        if (rw)
            __sync_sub_and_fetch(&open_rw_sessions, 1);
    }
    return rv;
}

static CK_RV shim_CloseAllSessions(CK_SLOT_ID slot) {
    CK_RV rv = REAL(CloseAllSessions, close_all_fn)(slot);
    if (rv == CKR_OK)
        open_sessions = open_rw_sessions = 0; /* the suite's tokens are alone in their slots */
    return rv;
}

/* ---- set-up ---- */

static CK_RV load(void) {
    if (real != NULL)
        return CKR_OK;
    const char *path = getenv("FAULTSHIM_MODULE");
    if (path == NULL || *path == '\0')
        path = "/usr/lib/softhsm/libsofthsm2.so";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "faultshim: cannot load %s: %s\n", path, dlerror());
        return CKR_GENERAL_ERROR;
    }
    get_function_list_fn get = (get_function_list_fn)dlsym(lib, "C_GetFunctionList");
    if (get == NULL || get(&real) != CKR_OK || real == NULL) {
        fprintf(stderr, "faultshim: %s has no usable C_GetFunctionList\n", path);
        real = NULL;
        return CKR_GENERAL_ERROR;
    }
    const char *name = getenv("FAULTSHIM_FAULT");
    if (name != NULL && *name != '\0') {
        int found = 0;
        for (size_t i = 1; i < sizeof fault_names / sizeof *fault_names; i++)
            if (strcmp(name, fault_names[i]) == 0) {
                fault = (enum fault)i;
                found = 1;
            }
        if (!found) {
            fprintf(stderr, "faultshim: unknown FAULTSHIM_FAULT %s\n", name);
            real = NULL;
            return CKR_GENERAL_ERROR;
        }
    }
    const char *ms = getenv("FAULTSHIM_SLOW_MS");
    if (ms != NULL && *ms != '\0')
        slow_ms = strtol(ms, NULL, 10);
    const char *most = getenv("FAULTSHIM_MAX_SESSIONS");
    if (most != NULL && *most != '\0')
        max_sessions = strtol(most, NULL, 10);
    const char *bits = getenv("FAULTSHIM_MAX_RSA_BITS");
    if (bits != NULL && *bits != '\0')
        max_rsa_bits = strtol(bits, NULL, 10);
    return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = load();
    if (rv != CKR_OK)
        return rv;
    shim = *real;
    shim.fn[F_GetFunctionList] = (void *)C_GetFunctionList;
    shim.fn[F_Sign] = (void *)shim_Sign;
    shim.fn[F_SignFinal] = (void *)shim_SignFinal;
    shim.fn[F_Digest] = (void *)shim_Digest;
    shim.fn[F_DigestFinal] = (void *)shim_DigestFinal;
    shim.fn[F_Verify] = (void *)shim_Verify;
    shim.fn[F_VerifyFinal] = (void *)shim_VerifyFinal;
    shim.fn[F_GetAttributeValue] = (void *)shim_GetAttributeValue;
    shim.fn[F_GenerateRandom] = (void *)shim_GenerateRandom;
    shim.fn[F_Login] = (void *)shim_Login;
    shim.fn[F_SignInit] = (void *)shim_SignInit;
    shim.fn[F_GetSessionInfo] = (void *)shim_GetSessionInfo;
    shim.fn[F_CloseSession] = (void *)shim_CloseSession;
    shim.fn[F_OpenSession] = (void *)shim_OpenSession;
    shim.fn[F_CloseAllSessions] = (void *)shim_CloseAllSessions;
    shim.fn[F_GetTokenInfo] = (void *)shim_GetTokenInfo;
    shim.fn[F_GetMechanismInfo] = (void *)shim_GetMechanismInfo;
    shim.fn[F_GenerateKeyPair] = (void *)shim_GenerateKeyPair;
    *out = &shim;
    return CKR_OK;
}
