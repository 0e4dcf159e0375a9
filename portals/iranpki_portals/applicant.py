"""The applicant's portal (public): what may be asked for, the registration form built from the
profile's subject attributes and the registration rules, the tracking code, and following the
request. Every rule is the library's: this module parses the form, calls the engine, and shows
what it says, each error beside its field."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from iranpki.errors import IdentifierError, IranPkiError, NotFoundError, RateLimitedError, RequestError
from iranpki.identity import check_legal_entity_id, check_national_code, check_persian_name

from .pages import digits, language, render, when
from .ra_api import _client, engine

WORDS = {
    "fa": {"title": "درخواست گواهی", "choose": "نوع گواهی و سطح اطمینان را برگزینید", "profile": "نوع گواهی",
           "level": "سطح", "ca": "مرکز صادرکننده", "register": "ثبت درخواست", "key_location": "جای کلید",
           "mobile": "شماره همراه (اختیاری)", "submit": "ثبت", "code_title": "درخواست ثبت شد",
           "code_note": "این کد رهگیری را نگه دارید؛ دوباره نشان داده نمی‌شود. با آن و کد ملی به دفتر ثبت‌نام بروید.",
           "tracking_code": "کد رهگیری", "follow": "پیگیری درخواست", "national_code": "کد ملی (یا شناسه ملی سازمان)",
           "state": "وضعیت", "expires": "مهلت", "fix": "لطفاً موارد نشان‌داده‌شده را درست کنید.",
           "personal-signature": "امضای شخصی", "organisational-seal": "مهر سازمانی", "ssl-server": "گواهی SSL/TLS",
           "smime": "رایانامهٔ امن (S/MIME)", "code-signing": "امضای کد", "tsa": "مهر زمانی",
           "SN": "نام خانوادگی", "GN": "نام", "serialNumber": "کد ملی", "CN": "نام کامل (روی گواهی)",
           "O": "نام سازمان", "organizationIdentifier": "شناسه ملی سازمان", "ST": "استان", "L": "شهر",
           "bad_national_code": "کد ملی درست نیست", "bad_persian_name": "این نام باید با حروف فارسی نوشته شود",
           "bad_legal_entity_id": "شناسه ملی سازمان درست نیست", "required": "این خانه را پر کنید",
           "desk-token": "روی توکن، در دفتر ثبت‌نام", "phone": "روی تلفن همراه", "software-pkcs12": "فایل نرم‌افزاری",
           "subscriber-csr": "درخواست (CSR) خودتان",
           "submitted": "ثبت‌شده؛ منتظر مراجعه به دفتر", "awaiting-proofing": "در دفتر، منتظر احراز هویت",
           "proofed": "هویت احراز شد", "awaiting-approval": "منتظر تأیید", "approved": "تأییدشده؛ در صف صدور",
           "issued": "صادر شد", "accepted": "پذیرفته شد", "rejected": "رد شد", "cancelled": "لغو شد",
           "expired": "مهلت گذشت", "not_found": "درخواستی با این کد رهگیری و کد ملی نیست",
           "limited": "تلاش‌های نادرست بسیار بود؛ کمی بعد دوباره بکوشید"},
    "en": {"title": "Apply for a certificate", "choose": "Choose the kind of certificate and the assurance level",
           "profile": "Kind", "level": "Level", "ca": "Issuing CA", "register": "Register", "key_location": "Key",
           "mobile": "Mobile number (optional)", "submit": "Register", "code_title": "Your request is registered",
           "code_note": "Keep this tracking code: it is not shown again. Take it and your national code to a "
                        "registration office.", "tracking_code": "Tracking code", "follow": "Follow a request",
           "national_code": "National code (or an organisation's national ID)", "state": "State",
           "expires": "Expires", "fix": "Please correct what is marked.",
           "personal-signature": "Personal signature", "organisational-seal": "Organisational seal",
           "ssl-server": "SSL/TLS server", "smime": "Secure e-mail (S/MIME)", "code-signing": "Code signing",
           "tsa": "Time-stamping", "SN": "Surname", "GN": "Given name", "serialNumber": "National code",
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
           "limited": "Too many wrong tries; try again later"},
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
    context = {"profile": profile, "profile_name": WORDS[lang].get(profile, profile), "level": level,
               "level_text": digits(str(level), lang), "ca": ca, "fields": fields,
               "locations": [{"id": x, "label": WORDS[lang].get(x, x)} for x in locations]}
    if request.method != "POST":
        return render(request, "applicant/register.html", context, words=WORDS)
    from iranpki.profiles import load_profile

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
    for f in fields:
        f["value"], f["error"] = values.get(f["name"], ""), errors.get(f["name"])
    context.update(chosen_location=location, location_error=errors.get("key_location"),
                   mobile=request.POST.get("mobile", ""))
    if errors:
        return render(request, "applicant/register.html", {**context, "error": WORDS[lang]["fix"]}, status=400,
                      words=WORDS)
    applicant = {"given_name": values.get("GN", ""), "surname": values.get("SN", "")}
    if values.get("serialNumber"):
        applicant["national_code"] = values["serialNumber"]
    elif values.get("organizationIdentifier"):
        applicant["national_id"] = values["organizationIdentifier"].removeprefix("NTRIR-")
    if request.POST.get("mobile"):
        applicant["mobile"] = request.POST["mobile"].strip()
    applicant = {k: v for k, v in applicant.items() if v}
    subject = ",".join(f"{k}={_escaped(v)}" for k, v in [("C", "IR"), *[(k, v) for k, v in values.items() if v]])
    try:
        made = engine().register(profile=profile, level=level, ca=ca, applicant=applicant, subject=subject,
                                 key_location=location, client=_client(request))
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
        try:
            record = engine().lookup(request.POST.get("tracking_code", ""), request.POST.get("national_code", ""),
                                     client=_client(request))
        except RateLimitedError:
            context["error"], status = WORDS[lang]["limited"], 429
        except (NotFoundError, RequestError):
            context["error"], status = WORDS[lang]["not_found"], 404
        else:
            context["record"] = {"id": record.id, "state": record.state,
                                 "state_text": WORDS[lang].get(record.state, record.state),
                                 "profile": WORDS[lang].get(record.profile, record.profile),
                                 "level": digits(str(record.level), lang), "expires": when(record.expires_at, lang)}
    response = render(request, "applicant/follow.html", context, status=status, words=WORDS)
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("", index, name="applicant"),
    path("register", register, name="applicant-register"),
    path("follow", follow, name="applicant-follow"),
]
