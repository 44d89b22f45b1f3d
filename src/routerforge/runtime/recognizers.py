"""Validated PII recognizers next to the learned token head: pattern + validation for the structured types.

An uncased 6-layer encoder is a poor checksum: it splits ``jane.doe@example.com`` into a name and an address,
and reads ``555-123-4567`` as half an SSN. Structured values are found better by a pattern plus a validator
(``phonenumbers`` for phones, Luhn for cards, mod-97 for IBANs, ``ipaddress`` for IPs), and merged with the
head's spans by one rule (:meth:`Recognizers.merge`, docs/runtime.md "Recognizers"):

>>> from routerforge.runtime.recognizers import Recognizers
>>> rec = Recognizers.from_config({"disabled": ["date"], "custom": [
...     {"name": "ticket", "entity_type": "TICKET_ID", "pattern": r"\\bTCK-\\d{6}\\b"}]})
>>> [(s.entity_type, s.text) for s in rec.apply("Mail jane.doe@example.com re TCK-123456", [])]
[('EMAIL_ADDRESS', 'jane.doe@example.com'), ('TICKET_ID', 'TCK-123456')]

Recognizers run on the *normalised* text the model reads (zero-width characters gone, fullwidth digits folded)
and their spans are mapped back to the original through the normaliser's offset map, so an obfuscated
``555\\u200b-123-4567`` is still found and the span still indexes the original text exactly. This module
imports no torch: it runs in the runtime for every backend.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import RouterforgeError
from .signals import PiiSpan

# The types the learned head keeps in free text: no pattern finds a name or an address reliably.
MODEL_TYPES = frozenset(
    {"PERSON", "GPE", "ORGANIZATION", "STREET_ADDRESS", "TITLE", "NRP", "AGE", "DATE_TIME", "US_DRIVER_LICENSE"}
)
# A postal address may run over several lines; a name, a place, a date or a title never does. The uncased encoder
# does not see line breaks, so in running text it carries a name on into the next line's place or company.
MULTI_LINE_TYPES = frozenset({"STREET_ADDRESS"})
DEFAULT_MIN_SPAN_SCORE = 0.3  # model spans below this are dropped when the model records no pii_min_score
# A number without a country code needs this many digits: shorter digit runs (a postcode and a house number, a
# time's fraction of a second) are VALID somewhere among the regions, and real local numbers are longer.
MIN_LOCAL_PHONE_DIGITS = 7
_DIGIT_AND_POINT = re.compile(r"\d[.:,]\Z")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\b")
_DECIMAL_PIECE = re.compile(r"(?:^|\s)\d*\.\d+(?=\s|$)")
_LONE_DIGIT = re.compile(r"(?<![xX.t])\s\d(?=\s|$)")  # not an extension's (``x 2``)
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "IL", "BR", "AU", "ES", "IT", "NL", "SE")


@dataclass(frozen=True)
class Found:
    """One recognizer hit, in the coordinates of the text it was run on."""

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str
    strong: bool = True  # strong: wins over any overlapping model span; weak: yields to a model span containing it


# -- validators ------------------------------------------------------------------------------------------------


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def luhn_valid(value: str) -> bool:
    """Luhn checksum over the digits of ``value`` (stdnum.luhn)."""
    from stdnum import luhn

    digits = _digits(value)
    return len(digits) >= 2 and luhn.is_valid(digits)


# Issuer prefixes and lengths (Visa, Mastercard incl. 2-series, Amex, Discover, Diners, JCB incl. 15-digit
# 1800/2131, UnionPay, Maestro): a Luhn-valid 16-digit order number of no issuer is not a card.
_ISSUERS = (
    (r"4", (13, 16, 19)),
    (r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)", (16,)),
    (r"3[47]", (15,)),
    (r"6(?:011|5|4[4-9])", (16, 19)),
    (r"3(?:0[0-5]|[689])", (14, 16)),
    (r"35", (16, 19)),  # JCB (3528-3589; generators use all of 35)
    (r"2131|1800", (15,)),
    (r"62", (16, 17, 18, 19)),
    (r"5[06-9]|6|0604", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
)
_ISSUER_RES = [(re.compile(p), lengths) for p, lengths in _ISSUERS]


def credit_card_valid(value: str) -> bool:
    """An issuer's prefix and length, then Luhn."""
    digits = _digits(value)
    issuer = any(rx.match(digits) and len(digits) in lengths for rx, lengths in _ISSUER_RES)
    return issuer and luhn_valid(digits)


def iban_valid(value: str) -> bool:
    """Country code, that country's length, and the mod-97 check (stdnum.iban)."""
    from stdnum import iban

    return bool(iban.is_valid(value))


def ssn_valid(value: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000; no known public examples."""
    digits = _digits(value)
    if len(digits) != 9 or len(set(digits)) == 1 or digits in ("123456789", "078051120", "219099999"):
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def ip_valid(value: str) -> bool:
    """IPv4 or IPv6 as :mod:`ipaddress` parses it (leading zeros in IPv4 are rejected there)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def email_valid(value: str) -> bool:
    """RFC 5321 shape: local part <= 64, whole <= 254, no empty dot-atoms, domain labels not edged by '-'."""
    local, _, domain = value.rpartition("@")
    if not local or len(local) > 64 or len(value) > 254 or ".." in value:
        return False
    if local[0] == "." or local[-1] == ".":
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(lab and lab[0] != "-" and lab[-1] != "-" for lab in labels)


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y")


def date_valid(value: str) -> bool:
    """A real calendar date (1900-2100) in an ISO or month-name form, or d/m/Y or m/d/Y (either reading)."""
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.replace(",", " "))
    text = " ".join(text.split())
    date_part = re.split(r"[T ](?=\d{1,2}:)", text)[0]
    candidates = []
    for fmt in _DATE_FORMATS:
        try:
            candidates.append(dt.datetime.strptime(date_part, fmt))
        except ValueError:
            pass
    m = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", date_part)
    if m:
        a, b, year = (int(g) for g in m.groups())
        for month, day in ((a, b), (b, a)):
            try:
                candidates.append(dt.datetime(year, month, day))
            except ValueError:
                pass
    return any(1900 <= d.year <= 2100 for d in candidates)


def mod97_valid(value: str) -> bool:
    """ISO 7064 mod 97-10 over the letters-as-numbers of ``value`` (IBAN-like reference numbers)."""
    from stdnum.iso7064 import mod_97_10

    compact = re.sub(r"[\s-]", "", value).upper()
    return len(compact) > 4 and bool(mod_97_10.is_valid(compact[4:] + compact[:4]))


#: Validators an ad-hoc recognizer may name in a config (code cannot travel in YAML/JSON).
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn_valid,
    "credit_card": credit_card_valid,
    "iban": iban_valid,
    "mod97": mod97_valid,
    "us_ssn": ssn_valid,
    "ip": ip_valid,
    "email": email_valid,
    "date": date_valid,
}


#: A model span of these types is kept only if its recognizer's validator accepts it.
MODEL_VALIDATED: dict[str, Callable[[str], bool]] = {
    entity_type: VALIDATORS[name]
    for entity_type, name in (
        ("CREDIT_CARD", "credit_card"),
        ("IBAN_CODE", "iban"),
        ("US_SSN", "us_ssn"),
        ("IP_ADDRESS", "ip"),
        ("EMAIL_ADDRESS", "email"),
    )
}
#: Lower-case words that begin or end no name, place or address: a model span loses them at its edges (rule 1).
FUNCTION_WORDS = frozenset("the a an of and or at on in to from by near corner with for".split())
#: What may follow a street address on its next lines, as part of it (merge rule 4).
ADDRESS_PARTS = frozenset({"STREET_ADDRESS", "GPE", "LOCATION", "ZIP_CODE"})
#: A model span of these types needs two letters or more.
NAME_TYPES = frozenset({"PERSON", "GPE", "ORGANIZATION", "NRP", "TITLE"})

# -- recognizers -----------------------------------------------------------------------------------------------


@dataclass
class RegexRecognizer:
    """Pattern -> candidate spans -> optional validator -> :class:`Found` (Presidio's ad-hoc recognizer).

    ``shrink``: when a candidate fails validation, try it without its trailing space-separated groups (an IBAN
    written in blocks of four must not swallow the word after it)."""

    name: str
    entity_type: str
    pattern: str | re.Pattern
    validator: Callable[[str], bool] | None = None
    score: float = 0.85
    strong: bool = True
    flags: int = 0
    shrink: bool = False
    group: int = 0
    _rx: re.Pattern = field(init=False, repr=False)

    def __post_init__(self):
        try:
            self._rx = self.pattern if isinstance(self.pattern, re.Pattern) else re.compile(self.pattern, self.flags)
        except re.error as err:
            raise RouterforgeError(
                f"recognizer {self.name!r}: bad pattern: {err}", hint="a Python regular expression (module re)"
            ) from None

    def find(self, text: str) -> list[Found]:
        """Every match of the pattern that its validator (if any) accepts, as scored spans."""
        out = []
        for m in self._rx.finditer(text):
            start, end = m.span(self.group)
            if start == end:
                continue
            valid_end = self._validated_end(text, start, end)
            if valid_end is not None:
                out.append(Found(self.entity_type, start, valid_end, self.score, self.name, self.strong))
        return out

    def _validated_end(self, text: str, start: int, end: int) -> int | None:
        if self.validator is None or self.validator(text[start:end]):
            return end
        if self.shrink:
            cuts = [start + m.start() for m in re.finditer(r"\s+", text[start:end])]
            for cut in reversed(cuts):
                if self.validator(text[start:cut]):
                    return cut
        return None


# A run that could hold a phone number: digits with spaces, dots, dashes, slashes, brackets, an optional
# leading + and extension. The matcher only sees these runs, so its cost follows the digits, not the text.
_PHONE_CANDIDATE = re.compile(
    r"(?<!\w)(?:\+[ \t]?)?\(?\d[\d \t().\-/]*\d(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,6})?", re.IGNORECASE
)


@dataclass
class PhoneRecognizer:
    """Phone numbers as the ``phonenumbers`` library finds them: a local number must be VALID in one of several
    regions; one written with a ``+`` country code (region-independent) need only be POSSIBLE for it, since
    the ``+`` is evidence enough and fictional ranges (``+44 7700 900...``) are not VALID."""

    name: str = "phone"
    entity_type: str = "PHONE_NUMBER"
    regions: Sequence[str] = PHONE_REGIONS
    score: float = 0.9
    strong: bool = True

    def find(self, text: str) -> list[Found]:
        """Phone numbers ``phonenumbers`` finds in any configured region and accepts as valid."""
        import phonenumbers

        seen: dict[tuple[int, int], Found] = {}
        for cand in _PHONE_CANDIDATE.finditer(text):
            value = cand.group()
            international = value.startswith("+")  # region-independent: one POSSIBLE pass
            if sum(c.isdigit() for c in value) < (6 if international else MIN_LOCAL_PHONE_DIGITS):
                continue
            regions = self.regions[:1] if international else self.regions
            leniency = phonenumbers.Leniency.POSSIBLE if international else phonenumbers.Leniency.VALID
            for region in regions:
                whole = False
                for m in phonenumbers.PhoneNumberMatcher(value, region, leniency=leniency):
                    start, end = cand.start() + m.start, cand.start() + m.end
                    if _other_numbers(text, start, m.raw_string, international):
                        continue
                    score = self.score if phonenumbers.is_valid_number(m.number) else self.score - 0.1
                    seen.setdefault((start, end), Found(self.entity_type, start, end, score, self.name))
                    whole = whole or (m.start, m.end) == (0, len(value))
                if whole:  # the run is one number: no other region can do better
                    break
        return list(seen.values())


def _other_numbers(text: str, start: int, raw: str, international: bool) -> bool:
    """Whether a phone match at ``start`` is numbers of another kind: the fraction of a time or a decimal (right
    after ``digit.``/``digit:``), an ISO date, a decimal piece (``0.9000000``, ``.1999``, ``88.1``; a phone written
    with dots has two or more), or, without a ``+`` code, a list of numbers (a lone digit after a space:
    ``2 3 4 5 6``, ``02000 5``; ``+46 8 123 456 78`` is a phone)."""
    return bool(
        _DIGIT_AND_POINT.search(text, 0, start)
        or _ISO_DATE.match(text, start)
        or _DECIMAL_PIECE.search(raw)
        or (not international and _LONE_DIGIT.search(raw))
    )


_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR"
).split()
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)


def builtin_recognizers(phone_regions: Sequence[str] = PHONE_REGIONS) -> dict[str, object]:
    """The built-in recognizers by name, in priority order (an overlap of equal length goes to the first)."""
    return {
        "email": RegexRecognizer(
            "email",
            "EMAIL_ADDRESS",
            r"(?<![\w.%+-])[\w.%+-]+@(?:[\w-]+\.)+[^\W\d_]{2,}(?![\w@-])",
            email_valid,
            score=0.95,
        ),
        "url": RegexRecognizer(
            "url",
            "DOMAIN_NAME",
            r"(?i)\b(?:https?://|www\.)[^\s<>\"'`]+?(?=[.,;:!?)\]}'\"]*(?:\s|$))",
            score=0.9,
        ),
        "iban": RegexRecognizer(
            "iban",
            "IBAN_CODE",
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
            iban_valid,
            score=0.95,
            flags=re.IGNORECASE,
            shrink=True,
        ),
        "credit_card": RegexRecognizer(
            "credit_card",
            "CREDIT_CARD",
            r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])",
            credit_card_valid,
            score=0.95,
        ),
        "ip_address": RegexRecognizer(
            "ip_address",
            "IP_ADDRESS",
            r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|(?=[0-9A-Fa-f:]*::?[0-9A-Fa-f])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
            r"(?![\w:]|\.\d)",
            ip_valid,
            score=0.95,
        ),
        "us_ssn": RegexRecognizer(
            "us_ssn", "US_SSN", r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])", ssn_valid, score=0.9
        ),
        "phone": PhoneRecognizer(regions=tuple(phone_regions)),
        "date": RegexRecognizer(
            "date",
            "DATE_TIME",
            r"(?i)(?<![\w/.-])(?:\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"
            r"|\d{1,2}/\d{1,2}/\d{4}"
            rf"|\d{{1,2}}(?:st|nd|rd|th)? {_MONTHS}\.?,? \d{{4}}|{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})"
            r"(?![\w/-])",
            date_valid,
            score=0.8,
            strong=False,
        ),
        "us_zip": RegexRecognizer(
            "us_zip",
            "ZIP_CODE",
            rf"(?:\b(?:{'|'.join(_STATES)}),? +|(?i:\bzip(?: ?code)?:? *))(\d{{5}}(?:-\d{{4}})?)(?![\w-])",
            score=0.7,
            strong=False,
            group=1,
        ),
    }


DEFAULT_ENABLED = ("email", "url", "iban", "credit_card", "ip_address", "us_ssn", "phone", "date", "us_zip")


class CustomRecognizerConfig(BaseModel):
    """An ad-hoc regex recognizer: a name, the entity type it reports, a pattern, an optional named validator."""

    model_config = ConfigDict(extra="forbid")
    name: str
    entity_type: str
    pattern: str
    validator: str | None = Field(None, description=f"one of {', '.join(VALIDATORS)}")
    score: float = Field(0.85, ge=0, le=1)
    ignore_case: bool = False
    strong: bool = Field(True, description="wins over overlapping model spans (false: yields to one containing it)")


class RecognizerConfig(BaseModel):
    """``pii_recognizers`` in routerforge.json and ``pii.recognizers`` in a router config (the latter wins)."""

    model_config = ConfigDict(extra="forbid")
    enabled: list[str] | None = Field(None, description="built-ins to run (default: all); [] runs none")
    disabled: list[str] = Field(default_factory=list, description="built-ins not to run")
    custom: list[CustomRecognizerConfig] = Field(default_factory=list, description="ad-hoc regex recognizers")
    min_score: float | None = Field(
        None, ge=0, le=1, description="model spans scoring below this are dropped (default: the bundle's)"
    )
    phone_regions: list[str] | None = Field(
        None,
        description=(
            "regions (ISO 3166 codes) in one of whose numbering plans a number without a + code must be VALID, "
            "tried in order "
            f"(default: {' '.join(PHONE_REGIONS)}); a digit run costs ~0.1 ms per region tried"
        ),
    )

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str] | None) -> list[str] | None:
        if regions is None:
            return None
        import phonenumbers

        upper = list(dict.fromkeys(r.upper() for r in regions))
        unknown = sorted(set(upper) - phonenumbers.SUPPORTED_REGIONS)
        if unknown or not upper:
            raise ValueError(f"unknown region(s) {', '.join(unknown)}" if unknown else "give at least one region")
        return upper


@dataclass
class Recognizers:
    """The enabled recognizers, and the merge of their spans with the learned head's."""

    recognizers: list = field(default_factory=list)
    min_score: float = DEFAULT_MIN_SPAN_SCORE

    @classmethod
    def from_config(cls, config: RecognizerConfig | dict | None = None, *, min_score: float | None = None):
        """Built from a :class:`RecognizerConfig` (or its dict); ``min_score`` is the fallback when the config
        sets none (the bundle's ``pii_min_score``)."""
        if not isinstance(config, RecognizerConfig):
            config = RecognizerConfig.model_validate(config or {})
        builtins = builtin_recognizers(config.phone_regions or PHONE_REGIONS)
        names = list(DEFAULT_ENABLED if config.enabled is None else config.enabled)
        unknown = sorted(set(names + config.disabled) - set(builtins))
        if unknown:
            raise RouterforgeError(
                f"unknown recognizer(s) {', '.join(unknown)}", hint=f"built-ins: {', '.join(builtins)}"
            )
        chosen: list = [builtins[n] for n in builtins if n in names and n not in config.disabled]
        for c in config.custom:
            if c.validator is not None and c.validator not in VALIDATORS:
                raise RouterforgeError(
                    f"recognizer {c.name!r}: unknown validator {c.validator!r}", hint=f"one of {', '.join(VALIDATORS)}"
                )
            chosen.append(
                RegexRecognizer(
                    c.name,
                    c.entity_type,
                    c.pattern,
                    VALIDATORS[c.validator] if c.validator else None,
                    score=c.score,
                    strong=c.strong,
                    flags=re.IGNORECASE if c.ignore_case else 0,
                )
            )
        floor = config.min_score if config.min_score is not None else min_score
        return cls(chosen, DEFAULT_MIN_SPAN_SCORE if floor is None else floor)

    @classmethod
    def for_model(
        cls,
        bundle: RecognizerConfig | dict | None,
        router: RecognizerConfig | dict | None = None,
        *,
        min_score: float | None = None,
    ) -> Recognizers:
        """The bundle's settings (``pii_recognizers``) with each field the router's config sets replacing it;
        ``min_score`` (the bundle's ``pii_min_score``) when neither sets one."""
        merged = _as_config(bundle).model_dump(exclude_unset=True)
        merged |= _as_config(router).model_dump(exclude_unset=True)
        return cls.from_config(merged, min_score=min_score)

    @property
    def names(self) -> list[str]:
        """The enabled recognizers, in scan order."""
        return [r.name for r in self.recognizers]

    def scan(self, text: str) -> list[Found]:
        """Every recognizer's hits, overlaps among them resolved: the longest wins, then the earlier recognizer."""
        hits = [(f, rank) for rank, r in enumerate(self.recognizers) for f in r.find(text)]
        hits.sort(key=lambda h: (-(h[0].end - h[0].start), h[1], -h[0].score))
        kept: list[Found] = []
        for f, _ in hits:
            if all(f.end <= k.start or k.end <= f.start for k in kept):
                kept.append(f)
        return sorted(kept, key=lambda f: f.start)

    def apply(self, original: str, model_spans: Iterable[PiiSpan], norm=None) -> list[PiiSpan]:
        """The final spans of one text: recognizers run on ``norm.text`` (the normalised text, default the
        original) and are mapped back to ``original``; then :meth:`merge` with the model's spans (which are on
        ``original`` already)."""
        found = self.scan(norm.text if norm is not None else original)
        if norm is not None:
            found = [_mapped(f, *norm.to_original(f.start, f.end)) for f in found]
        return self.merge(original, list(model_spans), found)

    def merge(self, text: str, model_spans: list[PiiSpan], found: list[Found]) -> list[PiiSpan]:
        """The merge rule (docs/runtime.md):

        1. a model span is widened to whole words (never ends inside a run of letters/digits), is cut at its line
           breaks unless its type may run over several lines (:data:`MULTI_LINE_TYPES`), loses the lower-case
           function words at its edges ("the corner of Rua das Pedras 930", :data:`FUNCTION_WORDS`),
           and is dropped when it has no letter or digit (or nothing but lower-case function words), scores below
           ``min_score``, is of a type with a validator
           (:data:`MODEL_VALIDATED`: "5.14" is no IP address) that rejects it, or names a person, place or
           organisation with fewer than two letters;
        2. a weak recognizer span (dates, ZIP codes) lying inside a model span of a free-text type
           (:data:`MODEL_TYPES`, e.g. the ZIP of a STREET_ADDRESS) yields to it;
        3. otherwise every recognizer span is kept, and a model span overlapping it loses the overlap: a free-text
           model span keeps the whole-word remainder on either side, a structured one (a fragment of what the
           recognizer validated) is dropped;
        4. a street address written over several lines is one span: a STREET_ADDRESS and the place, postcode or
           address line right after it (:data:`ADDRESS_PARTS`) join when only spaces and commas lie between them
           and the address so far, or that gap, breaks a line (:func:`_address_blocks`).
        """
        model = [s for s in (_whole_words(text, s) for s in model_spans) if s is not None]
        model = [piece for s in model for piece in _lines(text, s)]
        model = [s for s in (_without_function_words(text, s) for s in model) if s is not None and _plausible(s)]
        model = _disjoint(text, [s for s in model if s.score >= self.min_score])
        recognized: list[Found] = []
        for f in found:
            if not f.strong and any(
                m.entity_type in MODEL_TYPES
                and m.start <= f.start
                and f.end <= m.end
                and (m.end - m.start) > (f.end - f.start)
                for m in model
            ):
                continue
            recognized.append(f)
        out = [PiiSpan(f.entity_type, f.start, f.end, text[f.start : f.end], f.score) for f in recognized]
        for m in model:
            pieces = [(m.start, m.end)]
            for f in recognized:
                pieces = [p for a, b in pieces for p in _minus(a, b, f.start, f.end)]
            if pieces == [(m.start, m.end)]:
                out.append(m)
                continue
            if m.entity_type not in MODEL_TYPES:
                continue
            for a, b in pieces:
                piece = _trimmed(text, a, b)
                if piece is not None:
                    out.append(PiiSpan(m.entity_type, piece[0], piece[1], text[piece[0] : piece[1]], m.score))
        return _address_blocks(text, sorted(out, key=lambda s: (s.start, s.end)))


def _address_blocks(text: str, spans: list[PiiSpan]) -> list[PiiSpan]:
    """Rule 4 of :meth:`Recognizers.merge`: the lines of one postal address as one STREET_ADDRESS. On one line
    the parts stay apart ("12 Main Street, Boston" is a street and a city)."""
    out: list[PiiSpan] = []
    for s in spans:
        last = out[-1] if out else None
        gap = text[last.end : s.start] if last is not None else ""
        if (
            last is not None
            and last.entity_type == "STREET_ADDRESS"
            and s.entity_type in ADDRESS_PARTS
            and not gap.strip(" \t\r\n,")
            and "\n" in text[last.start : s.start]
        ):
            out[-1] = PiiSpan(last.entity_type, last.start, s.end, text[last.start : s.end], min(last.score, s.score))
        else:
            out.append(s)
    return out


def _plausible(s: PiiSpan) -> bool:
    """A model span its type allows: validated where a validator exists, two letters for a name-like type."""
    validator = MODEL_VALIDATED.get(s.entity_type)
    if validator is not None:
        return validator(s.text)
    return s.entity_type not in NAME_TYPES or sum(c.isalpha() for c in s.text) >= 2


def _disjoint(text: str, spans: list[PiiSpan]) -> list[PiiSpan]:
    """Widened model spans that now overlap: one span of a type becomes their union, of two types the higher
    score stays."""
    out: list[PiiSpan] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        last = out[-1] if out else None
        if last is None or last.end <= s.start:
            out.append(s)
        elif last.entity_type == s.entity_type:
            end = max(last.end, s.end)
            out[-1] = PiiSpan(last.entity_type, last.start, end, text[last.start : end], max(last.score, s.score))
        elif s.score > last.score:
            out[-1] = s
    return out


def _mapped(f: Found, start: int, end: int) -> Found:
    return Found(f.entity_type, start, end, f.score, f.recognizer, f.strong)


def _minus(a: int, b: int, start: int, end: int) -> list[tuple[int, int]]:
    """``[a, b)`` without ``[start, end)``: zero, one or two pieces."""
    if end <= a or b <= start:
        return [(a, b)]
    return [(x, y) for x, y in ((a, start), (end, b)) if x < y]


def _trimmed(text: str, a: int, b: int) -> tuple[int, int] | None:
    """A remainder of a cut model span, without the spaces and punctuation at its edges, if a whole word is left
    (a cut that leaves part of a word is not a span)."""
    while a < b and not text[a].isalnum():
        a += 1
    while b > a and not text[b - 1].isalnum():
        b -= 1
    if a >= b or (a > 0 and text[a - 1].isalnum()) or (b < len(text) and text[b].isalnum()):
        return None
    return a, b


_LINE = re.compile(r"[^\s,;:](?:[^\n\r\v\f\x1c-\x1e\x85\u2028\u2029]*[^\s,;:])?")  # a line, trimmed


def _lines(text: str, s: PiiSpan) -> list[PiiSpan]:
    """``s`` cut at its line breaks into its lines' spans, unless its type may run over several lines. Only when
    every line holds a name-like piece (two letters, not only function words): a cut never drops a line ("Smith,
    J." stays whole), so what a redaction covered it still covers."""
    if s.entity_type in MULTI_LINE_TYPES or s.entity_type not in MODEL_TYPES or len(s.text.splitlines()) < 2:
        return [s]
    pieces = [(s.start + m.start(), s.start + m.end()) for m in _LINE.finditer(s.text)]
    if any(sum(c.isalpha() for c in text[a:b]) < 2 or _function_words_only(text[a:b]) for a, b in pieces):
        return [s]
    return [PiiSpan(s.entity_type, a, b, text[a:b], s.score) for a, b in pieces]


def _function_words_only(value: str) -> bool:
    """Whether every word of ``value`` is a lower-case function word (true of a text without words)."""
    return all(w in FUNCTION_WORDS for w in re.findall(r"\w+", value))


def _without_function_words(text: str, s: PiiSpan) -> PiiSpan | None:
    """``s`` without the lower-case function words at either edge (and the punctuation around them); None when
    nothing is left, or when it holds nothing but lower-case function words ("the" of "the US" is no place; "An"
    may be a name).
    Other spans written all in lower case (no capital to say where a name starts) and spans of structured types
    stay."""
    if s.entity_type not in MODEL_TYPES:
        return s
    if _function_words_only(s.text):
        return None
    if not any(c.isupper() for c in s.text):
        return s
    words = [(s.start + m.start(), s.start + m.end()) for m in re.finditer(r"\w+", s.text)]
    first, last = 0, len(words)
    while first < last and text[slice(*words[first])] in FUNCTION_WORDS:
        first += 1
    while last > first and text[slice(*words[last - 1])] in FUNCTION_WORDS:
        last -= 1
    if first == last:
        return None
    start = words[first][0] if first else s.start
    end = s.end if last == len(words) else words[last - 1][1] + (text[words[last - 1][1]] in ".)")
    if (start, end) == (s.start, s.end):
        return s
    return PiiSpan(s.entity_type, start, end, text[start:end], s.score)


def _whole_words(text: str, s: PiiSpan) -> PiiSpan | None:
    """``s`` widened so it neither starts nor ends inside a word; None when it holds no letter or digit."""
    start, end = s.start, s.end
    if not any(c.isalnum() for c in text[start:end]):
        return None
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    if (start, end) == (s.start, s.end):
        return s
    return PiiSpan(s.entity_type, start, end, text[start:end], s.score)


def _as_config(value: RecognizerConfig | dict | None) -> RecognizerConfig:
    if isinstance(value, RecognizerConfig):
        return value
    try:
        return RecognizerConfig.model_validate(value or {})
    except ValueError as err:
        raise RouterforgeError(
            f"bad PII recognizer settings: {err}",
            hint="keys: enabled, disabled, custom (name, entity_type, pattern, validator), min_score",
        ) from None
