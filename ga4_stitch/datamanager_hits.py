"""What GA4 records for one Data Manager API ``IngestEventsRequest``, as Measurement Protocol hits.

The local GA4 endpoint records what it accepted in one shape, whichever API carried it: a
Measurement Protocol (MP) request body, which ``ga4_stitch.parity``, ``score`` and
``replay`` read. For the Data Manager API (DM) that body is rebuilt here from the request's
REST JSON (camelCase, as ``google.protobuf.json_format.MessageToDict`` writes it), by
reading Google's field-mapping page ("Upgrade from Measurement Protocol to the Data Manager
API: field mappings") from right to left:

- ``clientId`` / ``appInstanceId`` / ``userId`` -> ``client_id`` / ``app_instance_id`` /
  ``user_id``; ``eventTimestamp`` (RFC 3339) -> ``timestamp_micros`` (request and event)
- ``eventName`` -> ``events[].name``; ``additionalEventParameters[] {parameterName,
  value}`` -> ``events[].params``; ``transactionId``, ``currency``, ``conversionValue`` ->
  the ``transaction_id``, ``currency``, ``value`` parameters
- ``cartData.items[] {itemId, quantity, unitPrice, additionalItemParameters}`` ->
  ``params.items[] {item_id, quantity, price, ...}``; ``cartData.couponCodes[0]`` ->
  ``params.coupon``
- ``consent {adUserData, adPersonalization}`` (else the request's) -> ``consent``
  (``CONSENT_GRANTED`` -> ``GRANTED``, ``CONSENT_DENIED`` -> ``DENIED``)
- ``userProperties.additionalUserProperties[] {propertyName, value}`` ->
  ``user_properties {name: {value}}``
- ``userData.userIdentifiers[]`` (``emailAddress``, ``phoneNumber``, ``address``) ->
  ``user_data`` (``sha256_email_address``, ``sha256_phone_number``, ``address``)
- ``eventDeviceInfo`` (category, brand, model, OS, browser, versions, language, screen) ->
  ``device``; its ``userAgent`` / ``ipAddress`` -> ``user_agent`` / ``ip_override``
- ``eventLocation`` (city, subdivision, region, subcontinent, continent codes) ->
  ``user_location``
- a GA4 destination's ``productDestinationId`` -> the ``measurement_id``

DM carries every parameter value as a string; a value that is exactly an integer
(``-?(0|[1-9][0-9]*)``) or a decimal number is read back as a number, as GA4 types
parameters by their value (``session_id`` and ``engagement_time_msec`` are numbers in MP).

Invariant: pure (no I/O, no clock), never raises on any JSON value, and the rebuilt body
of a request holds one MP event per DM event bound for a Google Analytics destination,
in request order, each with its own ``timestamp_micros``; the body's user fields are those
of the last such event. The forwarder batches events of many browsers into one request
and names each GA4 event's event id (``x-ga4-stitch-event-ids``): ``event_hits`` splits
the request into one body per forwarded event, as separate MP requests would have been.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

GA4_ACCOUNT_TYPE: Final = "GOOGLE_ANALYTICS_PROPERTY"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+")
_CONSENT: Final = {"CONSENT_GRANTED": "GRANTED", "CONSENT_DENIED": "DENIED"}
_DEVICE: Final = (
    ("category", "category"),
    ("brand", "brand"),
    ("model", "model"),
    ("operatingSystem", "operating_system"),
    ("operatingSystemVersion", "operating_system_version"),
    ("browser", "browser"),
    ("browserVersion", "browser_version"),
    ("languageCode", "language"),
)
_LOCATION: Final = (
    ("city", "city"),
    ("subdivisionCode", "region_id"),
    ("regionCode", "country_id"),
    ("subcontinentCode", "subcontinent_id"),
    ("continentCode", "continent_id"),
)
_ADDRESS: Final = (
    ("givenName", "sha256_first_name"),
    ("familyName", "sha256_last_name"),
    ("addressLine", "sha256_street"),
    ("city", "city"),
    ("administrativeArea", "region"),
    ("postalCode", "postal_code"),
    ("regionCode", "country"),
)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parameter_value(value: object) -> object:
    """A DM parameter value (a string) as GA4 would type it: an integer or a decimal number
    when it is exactly one, else the text."""
    if not isinstance(value, str):
        return value
    if _INTEGER.fullmatch(value):
        return int(value)
    if _DECIMAL.fullmatch(value):
        return float(value)
    return value


def timestamp_micros(value: object) -> int | None:
    """An RFC 3339 timestamp (``2026-01-02T03:04:05.123456Z``) as Unix microseconds."""
    text = _text(value)
    if text is None:
        return None
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    nanos = int((fraction or "0").ljust(9, "0")[:9])
    return int(moment.timestamp()) * 1_000_000 + nanos // 1000


def ga4_destinations(request: Mapping[str, Any]) -> dict[str, str]:
    """Reference -> measurement id of each Google Analytics destination of the request
    (a destination without a reference is keyed by its position, as ``"#0"``)."""
    result = {}
    for index, raw in enumerate(_list(request.get("destinations"))):
        destination = _mapping(raw)
        account = _mapping(destination.get("operatingAccount"))
        if account.get("accountType") == GA4_ACCOUNT_TYPE:
            key = _text(destination.get("reference")) or f"#{index}"
            result[key] = _text(destination.get("productDestinationId")) or ""
    return result


def _destination_keys(request: Mapping[str, Any]) -> list[str]:
    return [
        _text(_mapping(d).get("reference")) or f"#{i}"
        for i, d in enumerate(_list(request.get("destinations")))
    ]


def event_ga4_destinations(request: Mapping[str, Any], event: Mapping[str, Any]) -> list[str]:
    """The measurement ids one event goes to: its ``destinationReferences`` among the GA4
    destinations, or every GA4 destination of the request when it names none."""
    ga4 = ga4_destinations(request)
    named = [r for r in _list(event.get("destinationReferences")) if isinstance(r, str)]
    keys = named or _destination_keys(request)
    return [ga4[key] for key in keys if key in ga4]


def _params(entries: object, name_key: str) -> dict[str, Any]:
    params = {}
    for raw in _list(entries):
        entry = _mapping(raw)
        name = _text(entry.get(name_key))
        if name is not None and "value" in entry:
            params[name] = parameter_value(entry.get("value"))
    return params


def _items(cart: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = []
    for entry in _list(cart.get("items")):
        raw = _mapping(entry)
        item: dict[str, Any] = {}
        if _text(raw.get("itemId")):
            item["item_id"] = raw["itemId"]
        if raw.get("quantity") is not None:
            item["quantity"] = parameter_value(str(raw["quantity"]))
        if isinstance(raw.get("unitPrice"), int | float):
            item["price"] = raw["unitPrice"]
        item.update(_params(raw.get("additionalItemParameters"), "parameterName"))
        if item:
            items.append(item)
    return items


def _event(event: Mapping[str, Any], time_micros: int | None) -> dict[str, Any]:
    params = _params(event.get("additionalEventParameters"), "parameterName")
    if _text(event.get("transactionId")):
        params.setdefault("transaction_id", event["transactionId"])
    if _text(event.get("currency")):
        params.setdefault("currency", event["currency"])
    if isinstance(event.get("conversionValue"), int | float):
        params.setdefault("value", event["conversionValue"])
    cart = _mapping(event.get("cartData"))
    coupons = [c for c in _list(cart.get("couponCodes")) if isinstance(c, str) and c]
    if coupons:
        params.setdefault("coupon", coupons[0])
    items = _items(cart)
    if items:
        params["items"] = items
    result: dict[str, Any] = {"name": _text(event.get("eventName")) or "", "params": params}
    if time_micros is not None:
        result["timestamp_micros"] = time_micros
    return result


def _consent(event: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, str]:
    own, shared = _mapping(event.get("consent")), _mapping(request.get("consent"))
    consent = {}
    for dm, mp in (("adUserData", "ad_user_data"), ("adPersonalization", "ad_personalization")):
        value = _CONSENT.get(str(own.get(dm) or shared.get(dm) or ""))
        if value is not None:
            consent[mp] = value
    return consent


def _user_data(event: Mapping[str, Any]) -> dict[str, Any]:
    emails, phones, addresses = [], [], []
    for entry in _list(_mapping(event.get("userData")).get("userIdentifiers")):
        identifier = _mapping(entry)
        if _text(identifier.get("emailAddress")):
            emails.append(identifier["emailAddress"])
        elif _text(identifier.get("phoneNumber")):
            phones.append(identifier["phoneNumber"])
        elif isinstance(identifier.get("address"), Mapping):
            address = {
                mp: identifier["address"][dm]
                for dm, mp in _ADDRESS
                if _text(identifier["address"].get(dm))
            }
            if address:
                addresses.append(address)
    found: tuple[tuple[str, list[Any]], ...] = (
        ("sha256_email_address", emails),
        ("sha256_phone_number", phones),
        ("address", addresses),
    )
    return {name: values for name, values in found if values}


def _device(info: Mapping[str, Any]) -> dict[str, Any]:
    device = {mp: info[dm] for dm, mp in _DEVICE if _text(info.get(dm))}
    width, height = info.get("screenWidth"), info.get("screenHeight")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        device["screen_resolution"] = f"{width}x{height}"
    return device


def _identity(event: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The MP top-level fields one DM event states."""
    body: dict[str, Any] = {}
    for dm, mp in (("clientId", "client_id"), ("appInstanceId", "app_instance_id")):
        if _text(event.get(dm)):
            body[mp] = event[dm]
    if _text(event.get("userId")):
        body["user_id"] = event["userId"]
    consent = _consent(event, request)
    if consent:
        body["consent"] = consent
    properties = _params(
        _mapping(event.get("userProperties")).get("additionalUserProperties"), "propertyName"
    )
    if properties:
        body["user_properties"] = {name: {"value": value} for name, value in properties.items()}
    user_data = _user_data(event)
    if user_data:
        body["user_data"] = user_data
    info = _mapping(event.get("eventDeviceInfo"))
    device = _device(info)
    if device:
        body["device"] = device
    if _text(info.get("userAgent")):
        body["user_agent"] = info["userAgent"]
    if _text(info.get("ipAddress")):
        body["ip_override"] = info["ipAddress"]
    location = _mapping(event.get("eventLocation"))
    user_location = {mp: location[dm] for dm, mp in _LOCATION if _text(location.get(dm))}
    if user_location:
        body["user_location"] = user_location
    return body


def _ga4_hits(ingest: Mapping[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """(GA4 event's position among the request's GA4 events, measurement id, MP body with
    that one event), in request order."""
    hits = []
    position = 0
    for raw in _list(ingest.get("events")):
        event = _mapping(raw)
        time_micros = timestamp_micros(event.get("eventTimestamp"))
        measurement_ids = event_ga4_destinations(ingest, event)
        for measurement_id in measurement_ids:
            body = _identity(event, ingest)
            if time_micros is not None:
                body["timestamp_micros"] = time_micros
            body["events"] = [_event(event, time_micros)]
            hits.append((position, measurement_id, body))
        position += bool(measurement_ids)
    return hits


def request_hits(request: object) -> list[tuple[str, dict[str, Any]]]:
    """(measurement id, MP body with one event) for each event of a DM request bound for a
    GA4 destination, in request order."""
    return [(measurement_id, body) for _, measurement_id, body in _ga4_hits(_mapping(request))]


def _merged(hits: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """Hits as one MP body: the last hit's user fields, every hit's events in order."""
    measurement_id, last = hits[-1]
    body = {name: value for name, value in last.items() if name != "events"}
    body["events"] = [event for _, hit in hits for event in hit["events"]]
    return measurement_id, body


def request_body(request: object) -> tuple[str | None, dict[str, Any] | None]:
    """One DM request as the one MP request body GA4 records for it (module docstring):
    (measurement id, body), or (None, None) when no event of it goes to GA4."""
    hits = request_hits(request)
    if not hits:
        return None, None
    return _merged(hits)


def event_hits(
    request: object, event_ids: Sequence[str | None]
) -> list[tuple[str | None, str, dict[str, Any]]]:
    """One DM request as GA4 records it per forwarded event: (event id, measurement id, MP
    body) for each run of consecutive GA4 events of one event id and stream.

    ``event_ids`` names each GA4 event in request order (the forwarder's
    ``x-ga4-stitch-event-ids``); a single id names every event (one event's request, or
    the single ``X-Ga4-Stitch-Event-Id`` header); a GA4 event past the list has none.
    Empty when no event of the request goes to GA4."""
    groups: list[tuple[str | None, list[tuple[str, dict[str, Any]]]]] = []
    for position, measurement_id, body in _ga4_hits(_mapping(request)):
        if len(event_ids) == 1:
            event_id = event_ids[0]
        else:
            event_id = event_ids[position] if position < len(event_ids) else None
        if groups and groups[-1][0] == event_id and groups[-1][1][-1][0] == measurement_id:
            groups[-1][1].append((measurement_id, body))
        else:
            groups.append((event_id, [(measurement_id, body)]))
    return [(event_id, *_merged(hits)) for event_id, hits in groups]


def ads_conversions(request: object) -> list[dict[str, Any]]:
    """The events of a DM request bound for Google Ads destinations:
    ``{customer_id, conversion_action_id, event_name, transaction_id}`` each."""
    ingest = _mapping(request)
    destinations = {}
    for index, raw in enumerate(_list(ingest.get("destinations"))):
        destination = _mapping(raw)
        account = _mapping(destination.get("operatingAccount"))
        if account.get("accountType") == "GOOGLE_ADS":
            key = _text(destination.get("reference")) or f"#{index}"
            destinations[key] = (account.get("accountId"), destination.get("productDestinationId"))
    result = []
    for entry in _list(ingest.get("events")):
        event = _mapping(entry)
        named = [r for r in _list(event.get("destinationReferences")) if isinstance(r, str)]
        for key in named or _destination_keys(ingest):
            if key in destinations:
                customer, action = destinations[key]
                result.append(
                    {
                        "customer_id": customer,
                        "conversion_action_id": action,
                        "event_name": event.get("eventName"),
                        "transaction_id": event.get("transactionId"),
                    }
                )
    return result
