"""The applicant's portal (public): what may be asked for, the registration form built from the
profile's subject attributes and the registration rules, the tracking code, and following the
request. Every rule is the library's: this module parses the form, calls the engine, and shows
what it says, each error beside its field."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from iranpki.errors import IdentifierError, IranPkiError, NotFoundError, RateLimitedError, RequestError
from iranpki.identity import check_legal_entity_id, check_national_code, check_persian_name

from .pages import (
    FieldError,
    PerClientLimit,
    der,
    digits,
    fresh,
    language,
    once,
    redirect,
    render,
    sign_in,
    spend_once,
    uploaded,
    when,
)
from .ra_api import _client, engine

WORDS = {
    "fa": {"title": "درخواست گواهی", "choose": "نوع گواهی و سطح اطمینان را برگزینید", "profile": "نوع گواهی",
           "level": "سطح", "ca": "مرکز صادرکننده", "register": "ثبت درخواست", "key_location": "جای کلید",
           "mobile": "شماره همراه (اختیاری)",
           "publish": "گواهی من در فهرست عمومی (LDAP) منتشر شود تا دیگران بتوانند برایم رایانامهٔ رمزشده بفرستند",
           "submit": "ثبت", "code_title": "درخواست ثبت شد",
           "code_note": "این کد رهگیری را نگه دارید؛ دوباره نشان داده نمی‌شود. با آن و کد ملی به دفتر ثبت‌نام بروید.",
           "tracking_code": "کد رهگیری", "follow": "پیگیری درخواست", "national_code": "کد ملی (یا شناسه ملی سازمان)",
           "state": "وضعیت", "expires": "مهلت", "fix": "لطفاً موارد نشان‌داده‌شده را درست کنید.",
           "personal-signature": "امضای شخصی", "organisational-seal": "مهر سازمانی", "ssl-server": "گواهی SSL/TLS",
           "smime": "رایانامهٔ امن (S/MIME)", "smime-encryption": "رمزگذاری رایانامه (S/MIME، فقط رمزگذاری)", "code-signing": "امضای کد", "tsa": "مهر زمانی",
           "SN": "نام خانوادگی", "GN": "نام", "serialNumber": "کد ملی", "CN": "نام کامل (روی گواهی)",
           "own_code": "کد ملی شما (روی گواهی نمی‌آید؛ برای پیگیری و احراز هویت)", "email": "نشانی رایانامه (روی گواهی)",
           "bad_email": "نشانی رایانامه درست نیست",
           "O": "نام سازمان", "organizationIdentifier": "شناسه ملی سازمان", "ST": "استان", "L": "شهر",
           "bad_national_code": "کد ملی درست نیست", "bad_persian_name": "این نام باید با حروف فارسی نوشته شود",
           "bad_legal_entity_id": "شناسه ملی سازمان درست نیست", "required": "این خانه را پر کنید",
           "desk-token": "روی توکن، در دفتر ثبت‌نام", "phone": "روی تلفن همراه", "software-pkcs12": "فایل نرم‌افزاری",
           "subscriber-csr": "درخواست (CSR) خودتان",
           "submitted": "ثبت‌شده؛ منتظر مراجعه به دفتر", "awaiting-proofing": "در دفتر، منتظر احراز هویت",
           "proofed": "هویت احراز شد", "awaiting-approval": "منتظر تأیید", "approved": "تأییدشده؛ در صف صدور",
           "issued": "صادر شد", "accepted": "پذیرفته شد", "rejected": "رد شد", "cancelled": "لغو شد",
           "expired": "مهلت گذشت", "not_found": "درخواستی با این کد رهگیری و کد ملی نیست",
           "limited": "تلاش‌های نادرست بسیار بود؛ کمی بعد دوباره بکوشید",
           "my_request": "درخواست من", "my_certificates": "گواهی‌های من", "sign_out": "خروج",
           "session_over": "نشست شما پایان یافته است؛ دوباره با کد رهگیری و کد ملی وارد شوید.",
           "replayed": "این فرم پیش‌تر فرستاده شده بود؛ چیزی تغییر نکرد. صفحه را دوباره باز کنید.",
           "documents": "مدارک", "upload": "بارگذاری", "document_kind": "نوع مدرک", "document_number": "شماره مدرک",
           "scan": "تصویر مدرک (JPEG، PNG یا PDF، تا ۵ مگابایت)", "no_documents": "مدرکی بارگذاری نشده است.",
           "too_big": "این فایل بزرگ‌تر از اندازهٔ مجاز است", "bad_type": "این فایل JPEG، PNG یا PDF نیست",
           "choose_file": "یک فایل برگزینید", "uploaded": "مدرک بارگذاری شد.",
           "national-id-card": "کارت ملی", "birth-certificate": "شناسنامه", "passport": "گذرنامه",
           "company-registration": "آگهی ثبت شرکت", "official-letter": "نامهٔ رسمی",
           "csr-domain-control": "اثبات مالکیت دامنه", "biometric-match": "تطبیق زیست‌سنجی",
           "key_title": "کلید", "passphrase": "گذرواژهٔ فایل کلید (دست‌کم ۱۲ نویسه)", "passphrase_again": "تکرار گذرواژه",
           "passphrase_short": "گذرواژه دست‌کم ۱۲ نویسه باشد", "passphrase_differs": "دو گذرواژه یکی نیستند",
           "set_key": "ساخت کلید", "csr": "درخواست گواهی (CSR، PEM یا DER)", "send_csr": "فرستادن CSR",
           "download": "دریافت فایل PKCS#12 (یک بار)", "download_note": "فایل کلید و گواهی فقط یک بار داده می‌شود.",
           "wrong_passphrase": "گذرواژه درست نیست", "accept_title": "پذیرش گواهی",
           "accept_note": "این متن را با کلید گواهی امضا کنید و امضا را بارگذاری کنید، مثلاً:",
           "signature": "فایل امضا", "accept": "پذیرش", "certificate": "گواهی (PEM)", "cancel": "لغو درخواست",
           "cancelled_note": "درخواست لغو شد.", "serial": "شمارهٔ سریال", "status": "وضعیت", "valid_until": "اعتبار تا",
           "valid": "معتبر", "revoked": "باطل‌شده", "on hold": "تعلیق‌شده", "reason": "علت",
           "revoke": "درخواست ابطال", "no_certificates": "گواهی‌ای برای نمایش نیست؛ گواهی‌ها پس از احراز هویت شما (در دفتر، یا با امضا با کلید یک گواهی) نشان داده می‌شوند.",
           "unspecified": "نامشخص", "keyCompromise": "افشای کلید", "affiliationChanged": "تغییر وابستگی سازمانی",
           "superseded": "جایگزین شد", "cessationOfOperation": "پایان فعالیت",
           "change_title": "درخواست ثبت شد", "change_proof": "امضا با کلید کنونی (بدون مراجعه)",
           "change_note": "برای اثبات درخواست بدون مراجعه به دفتر، این متن را با کلید همین گواهی امضا کنید:",
           "send": "فرستادن", "visit": "برای این درخواست به دفتر ثبت‌نام بروید.",
           "refused": "درخواست پذیرفته نشد", "kind": "نوع درخواست", "issue": "صدور", "renew": "تمدید",
           "rekey": "کلید نو", "suspend": "تعلیق", "release": "رفع تعلیق", "carried_out": "انجام شد",
           "requests": "درخواست‌ها", "recover": "بازیابی کلید", "ask_recovery": "درخواست بازیابی کلید", "recover_title": "بازیابی کلید رمزگشایی",
           "recover_note": "کلید این گواهی نزد مرکز بایگانی شده است. برای بازگرداندن آن گذرواژه‌ای تازه بدهید؛ کلید بازیابی‌شده پس از احراز هویت در دفتر و تأیید دو کارشناس، فقط یک بار و زیر همین گذرواژه به شما داده می‌شود.",
           "recover_download": "دریافت کلید بازیابی‌شده (PKCS#12، یک بار)",
           "recover_passphrase": "گذرواژهٔ کلید بازیابی‌شده (همان که هنگام درخواست دادید)"},
    "en": {"title": "Apply for a certificate", "choose": "Choose the kind of certificate and the assurance level",
           "profile": "Kind", "level": "Level", "ca": "Issuing CA", "register": "Register", "key_location": "Key",
           "mobile": "Mobile number (optional)",
           "publish": "Publish my certificate in the public directory (LDAP), so that others can find it to send me "
                      "encrypted e-mail",
           "submit": "Register", "code_title": "Your request is registered",
           "code_note": "Keep this tracking code: it is not shown again. Take it and your national code to a "
                        "registration office.", "tracking_code": "Tracking code", "follow": "Follow a request",
           "national_code": "National code (or an organisation's national ID)", "state": "State",
           "expires": "Expires", "fix": "Please correct what is marked.",
           "personal-signature": "Personal signature", "organisational-seal": "Organisational seal",
           "ssl-server": "SSL/TLS server", "smime": "Secure e-mail (S/MIME)", "smime-encryption": "E-mail encryption (S/MIME, encryption only)", "code-signing": "Code signing",
           "tsa": "Time-stamping", "SN": "Surname", "GN": "Given name", "serialNumber": "National code",
           "own_code": "Your national code (not on the certificate; to follow the request and check who you are)",
           "email": "E-mail address (on the certificate)", "bad_email": "This is not an e-mail address",
           "CN": "Full name (on the certificate)", "O": "Organisation", "organizationIdentifier":
           "Organisation's national ID", "ST": "Province", "L": "City",
           "bad_national_code": "This national code is not valid", "bad_persian_name": "Write this name in Persian letters",
           "bad_legal_entity_id": "This national ID is not valid", "required": "Fill this in",
           "desk-token": "On a token, at the registration office", "phone": "On your phone",
           "software-pkcs12": "A software file", "subscriber-csr": "Your own request (CSR)",
           "submitted": "registered; visit an office", "awaiting-proofing": "at the office, identity being checked",
           "proofed": "identity checked", "awaiting-approval": "awaiting approval", "approved": "approved; to be issued",
           "issued": "issued", "accepted": "accepted", "rejected": "rejected", "cancelled": "cancelled",
           "expired": "expired", "not_found": "No request has this tracking code and national code",
           "limited": "Too many wrong tries; try again later",
           "my_request": "My request", "my_certificates": "My certificates", "sign_out": "Sign out",
           "session_over": "Your session has ended; sign in again with the tracking code and national code.",
           "replayed": "This form was sent already; nothing was changed. Open the page again.",
           "documents": "Documents", "upload": "Upload", "document_kind": "Document", "document_number": "Its number",
           "scan": "Scan (JPEG, PNG or PDF, up to 5 MB)", "no_documents": "No documents uploaded.",
           "too_big": "This file is larger than allowed", "bad_type": "This file is not a JPEG, PNG or PDF",
           "choose_file": "Choose a file", "uploaded": "The document was uploaded.",
           "national-id-card": "National ID card", "birth-certificate": "Birth certificate", "passport": "Passport",
           "company-registration": "Company registration", "official-letter": "Official letter",
           "csr-domain-control": "Proof of domain control", "biometric-match": "Biometric match",
           "key_title": "Key", "passphrase": "Passphrase of the key file (at least 12 characters)",
           "passphrase_again": "The passphrase again", "passphrase_short": "Give at least 12 characters",
           "passphrase_differs": "The two passphrases differ", "set_key": "Make the key",
           "csr": "Certificate request (CSR, PEM or DER)", "send_csr": "Send the CSR",
           "download": "Download the PKCS#12 file (once)", "download_note": "The key and certificate file is given once.",
           "wrong_passphrase": "Wrong passphrase", "accept_title": "Accept the certificate",
           "accept_note": "Sign this text with the certificate's key and upload the signature, for example:",
           "signature": "Signature file", "accept": "Accept", "certificate": "Certificate (PEM)",
           "cancel": "Cancel the request", "cancelled_note": "The request was cancelled.", "serial": "Serial",
           "status": "Status", "valid_until": "Valid until", "valid": "valid", "revoked": "revoked",
           "on hold": "on hold", "reason": "Reason", "revoke": "Ask for revocation",
           "no_certificates": "No certificate to show: certificates are listed once your identity was checked (at an office, or by signing with a certificate's key).", "unspecified": "unspecified",
           "keyCompromise": "key compromise", "affiliationChanged": "affiliation changed", "superseded": "superseded",
           "cessationOfOperation": "cessation of operation", "change_title": "Your request is registered",
           "change_proof": "Sign with the current key (no visit)",
           "change_note": "To prove this request with no visit to an office, sign this text with this certificate's key:",
           "send": "Send", "visit": "Take this request to a registration office.", "refused": "The request was refused",
           "kind": "Request", "issue": "issuance", "renew": "renewal", "rekey": "re-key", "suspend": "suspension",
           "release": "release", "carried_out": "carried out", "requests": "Requests", "recover": "key recovery", "ask_recovery": "Ask for key recovery",
           "recover_title": "Recover the decryption key",
           "recover_note": "This certificate's key is archived by the CA. To get it back, choose a new passphrase; after your identity is checked at an office and two officers approve, the recovered key is given to you once, under this passphrase.",
           "recover_download": "Download the recovered key (PKCS#12, once)",
           "recover_passphrase": "The recovered key's passphrase (the one given when asking)"},
}
_CHECKS = {"national-code": (check_national_code, "bad_national_code"),
           "persian-name": (check_persian_name, "bad_persian_name"),
           "legal-entity-id": (check_legal_entity_id, "bad_legal_entity_id")}


def _escaped(value: str) -> str:
    """A value written into ``parse_subject``'s text form (its separators escaped)."""
    return "".join("\\" + c if c in "\\,+/" else c for c in value)


def _offer(profile: str, level: int):  # noqa: ANN202
    for offer in engine().offers():
        if offer[0] == profile and offer[1] == level:
            return offer
    return None


def index(request: HttpRequest) -> HttpResponse:
    lang = language(request)
    offers = [{"profile": p, "name": WORDS[lang].get(p, p), "level": digits(str(n), lang), "level_n": n, "ca": ca}
              for p, n, ca, _ in engine().offers()]
    return render(request, "applicant/index.html", {"offers": offers}, words=WORDS)


def _fields(profile_name: str, lang: str) -> list[dict]:
    from iranpki.profiles import load_profile

    return [{"name": a.name, "label": WORDS[lang].get(a.name, a.name), "required": a.required,
             "ltr": a.check in ("national-code", "legal-entity-id", "dns-name", "country") or a.encoding == "printable"}
            for a in load_profile(profile_name).subject if a.value is None and a.name != "C"]


def register(request: HttpRequest) -> HttpResponse:
    lang = language(request)
    source = request.POST if request.method == "POST" else request.GET
    try:
        offer = _offer(source.get("profile", ""), int(source.get("level", "0")))
    except ValueError:
        offer = None
    if offer is None:
        return render(request, "applicant/index.html", {"offers": [], "error": WORDS[lang]["choose"]}, status=400,
                      words=WORDS)
    profile, level, ca, locations = offer
    fields = _fields(profile, lang)
    from iranpki.profiles import load_profile

    prof = load_profile(profile)
    # A certificate that names no identifier (a mailbox): the applicant's national code is asked
    # apart (the second factor of every later step); its mailbox goes into subjectAltName.
    own_code = not any(a.name in ("serialNumber", "organizationIdentifier") for a in prof.subject)
    context = {"profile": profile, "profile_name": WORDS[lang].get(profile, profile), "level": level,
               "level_text": digits(str(level), lang), "ca": ca, "fields": fields, "own_code": own_code,
               "wants_email": prof.san.email != "forbidden",
               "locations": [{"id": x, "label": WORDS[lang].get(x, x)} for x in locations]}
    if request.method != "POST":
        return render(request, "applicant/register.html", context, words=WORDS)
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for attr in load_profile(profile).subject:
        if attr.value is not None or attr.name == "C":
            continue
        value = request.POST.get(attr.name, "").strip()
        values[attr.name] = value
        if not value:
            if attr.required:
                errors[attr.name] = WORDS[lang]["required"]
            continue
        check = _CHECKS.get(attr.check or "")
        if check is not None:
            body = value.removeprefix(attr.prefix) if attr.prefix else value
            try:
                values[attr.name] = attr.prefix + check[0](body)
            except IdentifierError as exc:
                # In the page's language: the library's reason is English, so Persian pages say it in Persian.
                errors[attr.name] = f"{WORDS[lang][check[1]]}: {exc.problem}" if lang == "en" else WORDS[lang][check[1]]
    location = request.POST.get("key_location", "")
    if location not in locations:
        errors["key_location"] = WORDS[lang]["required"]
    own = request.POST.get("own_code", "").strip()
    if own_code:
        try:
            own = check_national_code(own)
        except IdentifierError as exc:
            errors["own_code"] = f"{WORDS[lang]['bad_national_code']}: {exc.problem}" if lang == "en" \
                else WORDS[lang]["bad_national_code"]
    email = request.POST.get("email", "").strip()
    if context["wants_email"] and (email or prof.san.email == "required"):
        local, at, domain = email.partition("@")
        if not (local and at and "." in domain) or any(c.isspace() for c in email) or len(email) > 254:
            errors["email"] = WORDS[lang]["bad_email"]
    for f in fields:
        f["value"], f["error"] = values.get(f["name"], ""), errors.get(f["name"])
    context.update(chosen_location=location, location_error=errors.get("key_location"),
                   mobile=request.POST.get("mobile", ""), publish=request.POST.get("publish") == "yes",
                   own_code_value=request.POST.get("own_code", ""), own_code_error=errors.get("own_code"),
                   email=email, email_error=errors.get("email"))
    if errors:
        return render(request, "applicant/register.html", {**context, "error": WORDS[lang]["fix"]}, status=400,
                      words=WORDS)
    applicant = {"given_name": values.get("GN", ""), "surname": values.get("SN", "")}
    if values.get("serialNumber"):
        applicant["national_code"] = values["serialNumber"]
    elif values.get("organizationIdentifier"):
        applicant["national_id"] = values["organizationIdentifier"].removeprefix("NTRIR-")
    elif own_code:
        applicant["national_code"] = own
    if request.POST.get("mobile"):
        applicant["mobile"] = request.POST["mobile"].strip()
    if request.POST.get("publish") == "yes":
        applicant["publish_consent"] = "yes"  # the certificate may be published in the directory (LDAP)
    applicant = {k: v for k, v in applicant.items() if v}
    subject = ",".join(f"{k}={_escaped(v)}" for k, v in [("C", "IR"), *[(k, v) for k, v in values.items() if v]])
    try:
        made = engine().register(profile=profile, level=level, ca=ca, applicant=applicant, subject=subject,
                                 key_location=location, client=_client(request),
                                 names={"emails": [email]} if email else None)
    except IranPkiError as exc:
        status = 429 if isinstance(exc, RateLimitedError) else 400
        return render(request, "applicant/register.html", {**context, "error": str(exc)}, status=status, words=WORDS)
    response = render(request, "applicant/registered.html",
                      {"code": made.code, "request": made.request, "expires": when(made.request.expires_at, lang)},
                      words=WORDS)
    response["Cache-Control"] = "no-store"  # the tracking code is shown once
    return response


def follow(request: HttpRequest) -> HttpResponse:
    lang = language(request)
    context: dict = {}
    status = 200
    if request.method == "POST":
        refused = _SIGN_INS.refused(request)  # sessions are memory: a valid code may not make them without end
        if refused is not None:
            return refused
        try:
            record = engine().lookup(request.POST.get("tracking_code", ""), request.POST.get("national_code", ""),
                                     client=_client(request))
        except RateLimitedError:
            context["error"], status = WORDS[lang]["limited"], 429
        except (NotFoundError, RequestError):
            context["error"], status = WORDS[lang]["not_found"], 404
        else:
            from iranpki.ra.codes import normalise_code

            sign_in(request, "applicant", {"id": record.id, "code": normalise_code(request.POST["tracking_code"]),
                                           "factor": request.POST.get("national_code", "").strip()})
            return redirect(f"/applicant/request?lang={lang}")
    elif request.GET.get("ended"):
        context["error"] = WORDS[lang]["session_over"]
    response = render(request, "applicant/follow.html", context, status=status, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


# ---- the applicant's own request, once signed in with the tracking code ------------------------

#: Persian for the library's refusals by the rule they name (the English text is the library's).
_RULES_FA = {"state": "این کار در وضعیت کنونی درخواست شدنی نیست", "passphrase-tries": "فایل کلید پس از گذرواژه‌های نادرست قفل شد",
             "acceptance": "امضا با کلید این گواهی و روی همین متن نیست", "current-key": "امضا با کلید این گواهی و روی همین متن نیست",
             "pending-change": "برای این گواهی درخواست بازِ دیگری هست", "certificate-status": "وضعیت گواهی اجازهٔ این درخواست را نمی‌دهد",
             "documents": "شمار مدارک بیش از اندازه است", "proofing-method": "این درخواست نیاز به مراجعه به دفتر دارد"}


def _said(exc: Exception, lang: str) -> str:
    """A refusal in the page's language: Persian by its rule, else the library's words."""
    from iranpki.errors import RuleRefusedError

    if lang == "fa" and isinstance(exc, RuleRefusedError) and exc.rule in _RULES_FA:
        return _RULES_FA[exc.rule]
    if lang == "fa" and isinstance(exc, RateLimitedError):
        return WORDS["fa"]["limited"]
    return str(exc)


def _signed_in(request: HttpRequest):  # noqa: ANN202 - (Actor, RequestRecord) or None
    from django.conf import settings

    from iranpki.ra import Actor

    entry = fresh(request, "applicant", settings.APPLICANT_SESSION_IDLE_SECONDS)
    if entry is None or not entry.get("id"):
        return None
    # The code was checked (and counted) at sign-in; the engine checks it against the request's
    # hash again at every step, so no lookup (and no failure count) is made per page.
    actor = Actor("applicant", entry["id"], credential=entry["code"])
    try:
        return actor, engine().store.get_request(actor.id)
    except NotFoundError:
        request.session.flush()
        return None


def _ended(lang: str) -> HttpResponse:
    return redirect(f"/applicant/follow?lang={lang}&ended=1")


_SCHEMES = ("sha256", "sha384", "sha512")
_SIGN_INS = PerClientLimit(30)
_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation")


def my_request(request: HttpRequest, *, error: str | None = None, field: str | None = None, note: str | None = None,
               status: int = 200) -> HttpResponse:
    """The signed-in applicant's request: its state, documents, key, download, acceptance."""
    from iranpki.ra import CHANGE_KINDS, OPEN_STATES

    lang = language(request)
    signed = _signed_in(request)
    if signed is None:
        return _ended(lang)
    actor, record = signed
    w = WORDS[lang]
    ra = engine()
    evidence = [{"kind": w.get(e.kind, e.kind), "size": digits(f"{e.size:,}", lang), "at": when(e.at, lang)}
                for e in ra.store.list_evidence(record.id)]
    kinds = ra.rules.documents_for(record.profile, record.level) if record.kind == "issue" else ("national-id-card",)
    context = {
        "record": {"id": record.id, "state": record.state, "state_text": w.get(record.state, record.state),
                   "kind": record.kind, "kind_text": w.get(record.kind, record.kind),
                   "profile": w.get(record.profile, record.profile), "level": digits(str(record.level), lang),
                   "expires": when(record.expires_at, lang), "key_location": w.get(record.key_location or "", ""),
                   "serial": None if record.serial is None else f"{record.serial:x}"},
        "evidence": evidence, "kinds": [{"id": k, "label": w.get(k, k)} for k in dict.fromkeys([*kinds, *ra.rules.documents])],
        "can_upload": record.state in ("submitted", "awaiting-proofing"),
        "needs_passphrase": record.state == "proofed" and record.key_location == "software-pkcs12",
        "needs_csr": record.state == "proofed" and record.key_location in ("phone", "subscriber-csr"),
        "can_download": record.state == "issued" and ("software_key" in record.proofing
                                                      or "sealed_key" in record.proofing),
        "can_accept": record.state == "issued" and record.kind in ("issue", "renew", "rekey"),
        "has_certificate": record.state in ("issued", "accepted") and record.kind in ("issue", "renew", "rekey"),
        "can_cancel": record.state in OPEN_STATES, "error": error, "field": field, "note": note,
        "schemes": _SCHEMES, "once": once(request)}
    if context["can_accept"]:
        context["acceptance"] = ra.acceptance_text(record).decode("utf-8")
    if record.kind in CHANGE_KINDS and record.state == "submitted":
        rule = ra.rules.changes.get(record.kind)
        if rule is not None and "signed-with-current-key" in rule.proofing and record.level in rule.current_key_levels:
            context["change_text"] = ra.change_text(record).decode("utf-8")
        else:
            context["visit"] = True
    response = render(request, "applicant/request.html", context, status=status, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


def _act(request: HttpRequest, step, field: str | None = None) -> HttpResponse:  # noqa: ANN001
    """Run one posted step for the signed-in applicant: refused if the session ended or the form
    was posted before; the library's refusal is shown beside the form, nothing else changed."""
    lang = language(request)
    if request.method != "POST":
        return redirect(f"/applicant/request?lang={lang}")
    signed = _signed_in(request)
    if signed is None:
        return _ended(lang)
    if not spend_once(request):
        return my_request(request, error=WORDS[lang]["replayed"], status=409)
    actor, record = signed
    try:
        outcome = step(actor, record, lang)
    except FieldError as exc:
        return my_request(request, error=str(exc), field=exc.field, status=400)
    except IranPkiError as exc:
        status = 429 if isinstance(exc, RateLimitedError) else 409
        return my_request(request, error=_said(exc, lang), field=field, status=status)
    if isinstance(outcome, HttpResponse):
        return outcome
    return redirect(f"/applicant/{outcome or 'request'}?lang={lang}")





def documents(request: HttpRequest) -> HttpResponse:
    from iranpki.ra import Document
    from iranpki.ra.engine import MAX_DOCUMENT_BYTES

    from .pages import media_type

    def step(actor, record, lang):  # noqa: ANN001, ANN202
        data = uploaded(request, "scan", MAX_DOCUMENT_BYTES, WORDS[lang])
        kind = media_type(data)
        if kind is None:
            raise FieldError("scan", WORDS[lang]["bad_type"])
        number = request.POST.get("number", "").strip()
        if not number:
            raise FieldError("number", WORDS[lang]["required"])
        engine().submit_document(actor, record.id, Document(request.POST.get("kind", ""), number, data, kind))

    return _act(request, step, "scan")


def key(request: HttpRequest) -> HttpResponse:
    def step(actor, record, lang):  # noqa: ANN001, ANN202
        if record.key_location == "software-pkcs12":
            passphrase = request.POST.get("passphrase", "")
            if len(passphrase) < 12:
                raise FieldError("passphrase", WORDS[lang]["passphrase_short"])
            if passphrase != request.POST.get("passphrase_again", ""):
                raise FieldError("passphrase_again", WORDS[lang]["passphrase_differs"])
            engine().bind_key(actor, record.id, csr=None, passphrase=passphrase)
        else:
            csr = uploaded(request, "csr", 64 * 1024, WORDS[lang]) or b""
            engine().bind_key(actor, record.id, csr=der(csr, "certificate request"))

    return _act(request, step, "csr")




def pkcs12(request: HttpRequest) -> HttpResponse:
    def step(actor, record, lang):  # noqa: ANN001, ANN202
        from iranpki.errors import PinError

        try:
            data = engine().pkcs12(actor, record.id, request.POST.get("passphrase", ""))
        except PinError as exc:
            raise FieldError("p12-passphrase", f"{WORDS[lang]['wrong_passphrase']} ({exc})" if lang == "en"
                              else WORDS[lang]["wrong_passphrase"]) from None
        response = HttpResponse(data, content_type="application/x-pkcs12")
        response["Content-Disposition"] = f'attachment; filename="{record.id}.p12"'
        response["Cache-Control"] = "no-store"
        return response

    return _act(request, step)


def _signed_step(request: HttpRequest, field: str, call) -> HttpResponse:  # noqa: ANN001
    """A step that takes a signature file made with the certificate's key (and its hash)."""
    def step(actor, record, lang):  # noqa: ANN001, ANN202
        signature = uploaded(request, field, 16 * 1024, WORDS[lang])
        scheme = request.POST.get("scheme", "sha256")
        if scheme not in _SCHEMES:
            raise FieldError(field, f"scheme {scheme!r}: one of {', '.join(_SCHEMES)}")
        call(actor, record.id, signature, scheme=scheme)

    return _act(request, step, field)


def accept(request: HttpRequest) -> HttpResponse:
    return _signed_step(request, "signature", engine().accept)


def change_proof(request: HttpRequest) -> HttpResponse:
    return _signed_step(request, "change-signature", engine().proof_by_current_key)


def cancel(request: HttpRequest) -> HttpResponse:
    return _act(request, lambda actor, record, lang: engine().cancel(actor, record.id) and None)


def certificate(request: HttpRequest) -> HttpResponse:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    lang = language(request)
    signed = _signed_in(request)
    if signed is None:
        return _ended(lang)
    _, record = signed
    if record.serial is None or record.state not in ("issued", "accepted") or record.kind in ("revoke", "suspend",
                                                                                                "release"):
        return my_request(request, error=WORDS[lang]["refused"], status=409)
    der = engine().store.get_certificate(record.serial).certificate
    response = HttpResponse(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM),
                            content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{record.serial:x}.pem"'
    return response


def certificates(request: HttpRequest, *, error: str | None = None, status: int = 200) -> HttpResponse:
    """The applicant's certificates (of every request with the same national code or ID), with
    their status now, and a revocation request for each valid one."""
    lang = language(request)
    signed = _signed_in(request)
    if signed is None:
        return _ended(lang)
    actor, _ = signed
    w = WORDS[lang]
    ra = engine()
    rows = [{"serial": f"{c.serial:x}", "profile": w.get(c.profile, c.profile), "status": c.status,
             "status_text": w.get(c.status, c.status), "until": when(c.not_after, lang),
             "reason": w.get(c.reason.name, c.reason.name) if c.reason is not None else "",
             "recoverable": ra.escrowed(c.profile) and ra.archived_key(c.serial) is not None}
            for _, c in ra.certificates_of(actor)]
    response = render(request, "applicant/certificates.html",
                      {"certificates": rows, "reasons": [{"id": r, "label": w[r]} for r in _REASONS],
                       "error": error, "once": once(request)}, status=status, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


def _change(request: HttpRequest, kind: str, check) -> HttpResponse:  # noqa: ANN001
    """A change request about one of the signed-in applicant's certificates (posted from their
    list): ``check(post, words)`` gives the request's arguments or the message that refuses it. A
    new request, with its own tracking code (shown once), which the session follows from now on."""
    lang = language(request)
    if request.method != "POST":
        return redirect(f"/applicant/certificates?lang={lang}")
    signed = _signed_in(request)
    if signed is None:
        return _ended(lang)
    if not spend_once(request):
        return certificates(request, error=WORDS[lang]["replayed"], status=409)
    actor, _ = signed
    mine = {f"{c.serial:x}": c for _, c in engine().certificates_of(actor)}
    serial = request.POST.get("serial", "")
    arguments = check(request.POST, WORDS[lang]) if serial in mine else WORDS[lang]["refused"]
    if isinstance(arguments, str):
        return certificates(request, error=arguments, status=400)
    factor = request.session["applicant"]["factor"]
    try:
        made = engine().request_change(kind, mine[serial].serial, second_factor=factor, client=_client(request),
                                       **arguments)
    except IranPkiError as exc:
        return certificates(request, error=_said(exc, lang), status=409)
    sign_in(request, "applicant", {"id": made.request.id, "code": made.code, "factor": factor})
    response = render(request, "applicant/registered.html",
                      {"code": made.code, "request": made.request, "expires": when(made.request.expires_at, lang),
                       "title": WORDS[lang]["change_title"], "next": True}, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


def revoke(request: HttpRequest) -> HttpResponse:
    """A revocation request for one of the applicant's certificates, with the reason chosen."""
    def check(post, w):  # noqa: ANN001, ANN202
        reason = post.get("reason", "")
        return {"reason": reason} if reason in _REASONS else w["refused"]

    return _change(request, "revoke", check)


def recover(request: HttpRequest) -> HttpResponse:
    """A recovery of the archived key of one of the applicant's encryption certificates (whatever
    its status), under the passphrase given here (twice)."""
    from iranpki.keys.escrow import MIN_PASSPHRASE

    def check(post, w):  # noqa: ANN001, ANN202
        passphrase = post.get("passphrase", "")
        if len(passphrase) < MIN_PASSPHRASE:
            return w["passphrase_short"]
        if passphrase != post.get("passphrase_again", ""):
            return w["passphrase_differs"]
        return {"passphrase": passphrase}

    return _change(request, "recover", check)


def sign_out(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        request.session.flush()
    return redirect(f"/applicant/follow?lang={language(request)}")


urlpatterns = [
    path("", index, name="applicant"),
    path("register", register, name="applicant-register"),
    path("follow", follow, name="applicant-follow"),
    path("request", my_request, name="applicant-request"),
    path("documents", documents),
    path("key", key),
    path("pkcs12", pkcs12),
    path("accept", accept),
    path("change-proof", change_proof),
    path("cancel", cancel),
    path("certificate.pem", certificate),
    path("certificates", certificates),
    path("revoke", revoke),
    path("recover", recover),
    path("sign-out", sign_out),
]
