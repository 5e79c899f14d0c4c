"""The Data Manager API's ``events:ingest`` checks, for the local GA4 endpoint.

``check(raw, now_micros)`` parses a request body with the official types
(``google.ads.datamanager_v1.IngestEventsRequest``, through ``json_format``: unknown fields,
malformed RFC 3339 timestamps and unknown enum names fail there) and then applies what the
API documents it refuses. The API fails fast: one bad record fails the whole request and
nothing of it is ingested ("Understand API errors"). A refusal is answered as the API
answers over REST: HTTP 400 with a ``google.rpc.Status`` JSON, ``error.code`` 400,
``error.status`` ``INVALID_ARGUMENT``, and ``error.details`` holding an ``ErrorInfo``
(``reason`` one of the library's ``ErrorReason`` names, domain
``datamanager.googleapis.com``), a ``BadRequest`` whose ``fieldViolations`` name each
offending field (snake_case paths such as ``events[0].event_timestamp``) and a
``RequestInfo`` with the request id.

Rules, each as ``reason``: what is refused (source).

- ``INVALID_FORMAT``: a body that does not parse as ``IngestEventsRequest``: unknown fields,
  timestamps not in RFC 3339, unknown enum names (the proto's REST JSON mapping).
- ``REQUIRED_FIELD_MISSING``: no ``destinations`` or no ``events`` (both "Required" in
  ``IngestEventsRequest``); a destination without ``operatingAccount``, its ``accountId``
  or ``accountType`` (``Destination``, ``ProductAccount``); a GA4 or Google Ads
  destination without ``productDestinationId`` (the measurement id, the conversion action
  id: ``Destination.product_destination_id``); an event without ``eventTimestamp``
  (``Event.event_timestamp``, "Required"); a GA4 event without ``eventName`` ("Required
  for GA4 events") or without ``clientId`` / ``appInstanceId`` (field mappings: required
  for web / app events); an event parameter or user property without its name or value
  (``EventParameter``, ``UserProperty``: both "Required").
- ``TOO_MANY_EVENTS``: more than 2,000 events (``IngestEventsRequest.events``).
- ``DUPLICATE_DESTINATION_REFERENCE`` / ``INVALID_DESTINATION``: a reference used twice;
  an event naming a reference no destination has (``ErrorReason``).
- ``OPERATING_ACCOUNT_LOGIN_ACCOUNT_MISMATCH``: a GA4 destination whose ``loginAccount``
  is not its property ("Send events" for GA4: the login account is the property).
- ``MULTIPLE_DESTINATIONS_FOR_GOOGLE_ANALYTICS_EVENT``: an event bound for two GA4
  destinations (``ErrorReason``).
- ``EVENT_TIME_INVALID``: a GA4 event more than 72 hours old (GA4's documented backdating
  limit; ``ErrorReason``: "did not occur within the acceptable time window").
- ``INVALID_EVENT_NAME``: a GA4 event name not ``[A-Za-z][A-Za-z0-9_]*`` of at most 40.
- ``RESERVED_NAME_USED``: a reserved GA4 event name (``session_start``,
  ``user_engagement``, ...; prefixes ``_``, ``firebase_``, ``ga_``, ``google_``: GA4
  takes "any event ... provided they're not reserved events"), parameter name (prefixes
  ``_``, ``firebase_``, ``ga_``, ``google_``, ``gtag.``) or user property (``user_id``,
  ``first_open_time``, ...).
- ``BOTH_CLIENT_ID_AND_APP_INSTANCE_ID_NOT_ALLOWED``: a GA4 event with both.
- ``TOO_MANY_USER_IDENTIFIERS``: more than 10 user identifiers in one event
  (``UserData.user_identifiers``).

GA4's reserved names are ``shared.domain.validation``'s (the Measurement Protocol's), which
the DM reference points to for GA4 event parameters and user properties. Invariant: pure
(the clock is ``now_micros``), never raises on any body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ga4_stitch.datamanager_hits import GA4_ACCOUNT_TYPE, timestamp_micros
from shared.domain.validation import (
    MAX_BACKDATE_MICROS,
    RESERVED_EVENT_NAMES,
    RESERVED_EVENT_PREFIXES,
    RESERVED_PARAM_PREFIXES,
    RESERVED_USER_PROPERTIES,
    RESERVED_USER_PROPERTY_PREFIXES,
)

INGEST_PATH: Final = "/v1/events:ingest"
"""The REST path of ``IngestionService.IngestEvents`` (the official client's REST transport)."""
DOMAIN: Final = "datamanager.googleapis.com"
MAX_EVENTS: Final = 2000
MAX_USER_IDENTIFIERS: Final = 10
MAX_EVENT_NAME_LENGTH: Final = 40
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ADS_ACCOUNT_TYPE: Final = "GOOGLE_ADS"


@dataclass(frozen=True)
class Violation:
    """One refused field: its path, why, and the ``ErrorReason`` name."""

    field: str
    description: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "description": self.description, "reason": self.reason}


@dataclass(frozen=True)
class Checked:
    """A parsed request (canonical REST JSON) and what is wrong with it."""

    request: dict[str, Any] | None
    violations: tuple[Violation, ...]

    @property
    def accepted(self) -> bool:
        return self.request is not None and not self.violations


def parse(raw: bytes) -> tuple[dict[str, Any] | None, Violation | None]:
    """The body as canonical REST JSON (``MessageToDict`` of the parsed message), or why it
    is not an ``IngestEventsRequest``."""
    from google.ads.datamanager_v1 import IngestEventsRequest
    from google.protobuf import json_format

    try:
        text = raw.decode("utf-8")
        message = IngestEventsRequest.from_json(text or "{}", ignore_unknown_fields=False)
    except (UnicodeDecodeError, json_format.ParseError, ValueError, TypeError) as exc:
        detail = str(exc).split("\n", 1)[0]
        return None, Violation("", f"Invalid JSON payload received. {detail}", "INVALID_FORMAT")
    as_dict: dict[str, Any] = json_format.MessageToDict(IngestEventsRequest.pb(message))
    return as_dict, None


def check(raw: bytes, now_micros: int) -> Checked:
    """Parse and check one ``events:ingest`` body (module docstring)."""
    request, problem = parse(raw)
    if request is None:
        return Checked(None, (problem,) if problem else ())
    return Checked(request, tuple(violations(request, now_micros)))


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _missing(field: str, what: str) -> Violation:
    return Violation(field, f"{what} is required.", "REQUIRED_FIELD_MISSING")


def _reserved(name: str, names: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return name in names or name.startswith(prefixes)


def violations(request: Mapping[str, Any], now_micros: int) -> list[Violation]:
    """Every documented refusal of one parsed request, in field order."""
    found: list[Violation] = []
    destinations = _list(request.get("destinations"))
    events = _list(request.get("events"))
    if not destinations:
        found.append(_missing("destinations", "At least one destination"))
    if not events:
        found.append(_missing("events", "At least one event"))
    if len(events) > MAX_EVENTS:
        found.append(
            Violation("events", f"At most {MAX_EVENTS} events are allowed.", "TOO_MANY_EVENTS")
        )
    kinds = _destinations(destinations, found)
    for index, event in enumerate(events):
        _event(f"events[{index}]", _map(event), kinds, now_micros, found)
    return found


def _destinations(destinations: list[Any], found: list[Violation]) -> dict[str, str]:
    """Reference (or ``#index``) -> account type, checking each destination."""
    kinds: dict[str, str] = {}
    for index, raw in enumerate(destinations):
        path, destination = f"destinations[{index}]", _map(raw)
        account = _map(destination.get("operatingAccount"))
        kind = str(account.get("accountType") or "")
        if not account:
            found.append(_missing(f"{path}.operating_account", "The operating account"))
        else:
            if not account.get("accountId"):
                found.append(_missing(f"{path}.operating_account.account_id", "The account id"))
            if not kind and not account.get("product"):
                found.append(_missing(f"{path}.operating_account.account_type", "The account type"))
        if kind in (GA4_ACCOUNT_TYPE, ADS_ACCOUNT_TYPE) and not destination.get(
            "productDestinationId"
        ):
            found.append(_missing(f"{path}.product_destination_id", "The product destination id"))
        login = _map(destination.get("loginAccount"))
        if kind == GA4_ACCOUNT_TYPE and login and login != account:
            found.append(
                Violation(
                    f"{path}.login_account",
                    "The login account must be the operating Google Analytics property.",
                    "OPERATING_ACCOUNT_LOGIN_ACCOUNT_MISMATCH",
                )
            )
        reference = str(destination.get("reference") or "") or f"#{index}"
        if reference in kinds:
            found.append(
                Violation(
                    f"{path}.reference",
                    f"The destination reference {reference!r} is used twice.",
                    "DUPLICATE_DESTINATION_REFERENCE",
                )
            )
        kinds[reference] = kind
    return kinds


def _event(
    path: str,
    event: Mapping[str, Any],
    kinds: Mapping[str, str],
    now_micros: int,
    found: list[Violation],
) -> None:
    named = [str(r) for r in _list(event.get("destinationReferences"))]
    for position, reference in enumerate(named):
        if reference not in kinds:
            found.append(
                Violation(
                    f"{path}.destination_references[{position}]",
                    f"No destination has the reference {reference!r}.",
                    "INVALID_DESTINATION",
                )
            )
    targets = [kinds[r] for r in (named or list(kinds)) if r in kinds]
    ga4 = targets.count(GA4_ACCOUNT_TYPE)
    if ga4 > 1:
        found.append(
            Violation(
                f"{path}.destination_references",
                "An event may go to one Google Analytics destination only.",
                "MULTIPLE_DESTINATIONS_FOR_GOOGLE_ANALYTICS_EVENT",
            )
        )
    time_micros = timestamp_micros(event.get("eventTimestamp"))
    if "eventTimestamp" not in event or time_micros is None:
        found.append(_missing(f"{path}.event_timestamp", "The event timestamp"))
    elif ga4 and time_micros < now_micros - MAX_BACKDATE_MICROS:
        found.append(
            Violation(
                f"{path}.event_timestamp",
                "The event is more than 72 hours old.",
                "EVENT_TIME_INVALID",
            )
        )
    identifiers = _list(_map(event.get("userData")).get("userIdentifiers"))
    if len(identifiers) > MAX_USER_IDENTIFIERS:
        found.append(
            Violation(
                f"{path}.user_data.user_identifiers",
                f"At most {MAX_USER_IDENTIFIERS} user identifiers are allowed.",
                "TOO_MANY_USER_IDENTIFIERS",
            )
        )
    found.extend(
        _named_values(
            f"{path}.additional_event_parameters",
            _list(event.get("additionalEventParameters")),
            ("parameterName", "parameter_name"),
            (frozenset(), RESERVED_PARAM_PREFIXES),
        )
    )
    found.extend(
        _named_values(
            f"{path}.user_properties.additional_user_properties",
            _list(_map(event.get("userProperties")).get("additionalUserProperties")),
            ("propertyName", "property_name"),
            (RESERVED_USER_PROPERTIES, RESERVED_USER_PROPERTY_PREFIXES),
        )
    )
    if ga4:
        _ga4_event(path, event, found)


def _ga4_event(path: str, event: Mapping[str, Any], found: list[Violation]) -> None:
    name = str(event.get("eventName") or "")
    if not name:
        found.append(_missing(f"{path}.event_name", "The event name of a Google Analytics event"))
    elif not _NAME.fullmatch(name) or len(name) > MAX_EVENT_NAME_LENGTH:
        found.append(
            Violation(
                f"{path}.event_name", f"The event name {name!r} is not valid.", "INVALID_EVENT_NAME"
            )
        )
    elif _reserved(name, RESERVED_EVENT_NAMES, RESERVED_EVENT_PREFIXES):
        found.append(
            Violation(
                f"{path}.event_name", f"The event name {name!r} is reserved.", "RESERVED_NAME_USED"
            )
        )
    client, app = event.get("clientId"), event.get("appInstanceId")
    if client and app:
        found.append(
            Violation(
                f"{path}.app_instance_id",
                "Set client_id (web) or app_instance_id (app), not both.",
                "BOTH_CLIENT_ID_AND_APP_INSTANCE_ID_NOT_ALLOWED",
            )
        )
    elif not client and not app:
        found.append(_missing(f"{path}.client_id", "The client id of a web event"))


def _named_values(
    path: str,
    entries: list[Any],
    keys: tuple[str, str],
    reserved_names: tuple[frozenset[str], tuple[str, ...]],
) -> list[Violation]:
    """Name/value entries: (JSON key, field name) of the name; (names, prefixes) reserved."""
    (name_key, name_field), (reserved, prefixes) = keys, reserved_names
    found: list[Violation] = []
    for index, raw in enumerate(entries):
        entry, where = _map(raw), f"{path}[{index}]"
        name = str(entry.get(name_key) or "")
        if not name:
            found.append(_missing(f"{where}.{name_field}", "The name"))
        elif _reserved(name, reserved, prefixes):
            found.append(
                Violation(
                    f"{where}.{name_field}", f"The name {name!r} is reserved.", "RESERVED_NAME_USED"
                )
            )
        if "value" not in entry:
            found.append(_missing(f"{where}.value", "The value"))
    return found


def error_body(violations: tuple[Violation, ...] | list[Violation], request_id: str) -> bytes:
    """The REST error of a refused request: a ``google.rpc.Status`` with ErrorInfo,
    BadRequest and RequestInfo details."""
    first = (
        violations[0]
        if violations
        else Violation("", "Request contains an invalid argument.", "INVALID_ARGUMENT")
    )
    message = (
        first.description
        if len(violations) <= 1
        else (f"{first.description} (and {len(violations) - 1} more problems)")
    )
    status = {
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": first.reason,
                    "domain": DOMAIN,
                    "metadata": {"field": first.field} if first.field else {},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": v.field, "description": v.description, "reason": v.reason}
                        for v in violations
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id},
            ],
        }
    }
    return json.dumps(status).encode()


def success_body(request_id: str) -> bytes:
    """``IngestEventsResponse`` as REST JSON."""
    return json.dumps({"requestId": request_id}).encode()
