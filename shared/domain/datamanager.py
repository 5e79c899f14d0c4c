"""One repaired Measurement Protocol body -> one Data Manager API ``IngestEventsRequest``.

Pure: no I/O, no clock, no Google library. The request is a plain dict with the proto's
field names (snake_case), timestamps as RFC 3339 strings and enums by name, so the adapter
(``shared.adapters.data_manager``) parses it into the official client's message as is.

Field by field, it follows Google's page "Field mappings" for upgrading from the
Measurement Protocol (MP)
(https://developers.google.com/data-manager/api/devguides/events/analytics/measurement-protocol/upgrade/field-mappings):

- ``measurement_id`` -> a destination with ``product_destination_id``, its
  ``operating_account`` the GA4 property (``GOOGLE_ANALYTICS_PROPERTY``, numeric id);
- ``consent`` -> the request's ``consent`` (``CONSENT_GRANTED`` / ``CONSENT_DENIED``);
  ``non_personalized_ads`` -> each event's ``consent.ad_personalization`` denied;
- ``client_id``, ``user_id`` -> ``events[].client_id``, ``events[].user_id``;
- ``timestamp_micros`` (request or event) -> ``events[].event_timestamp`` (RFC 3339);
- ``user_properties`` -> ``events[].user_properties`` (``customer_type`` and
  ``customer_value_bucket`` as their enums, the rest as ``additional_user_properties``;
  per-property timestamps have no equivalent: the event's time applies);
- ``user_data`` -> ``events[].user_data.user_identifiers`` (hex SHA-256, so the
  request's ``encoding`` is ``HEX``);
- ``user_location`` -> ``events[].event_location`` (``region_id`` -> ``subdivision_code``,
  ``country_id`` -> ``region_code``, M49 ids -> ``*_code``);
- ``ip_override``, ``user_agent``, ``device`` -> ``events[].event_device_info``
  (``screen_resolution`` ``WxH`` -> ``screen_width`` / ``screen_height``, ``language`` ->
  ``language_code``);
- ``events[].name`` -> ``event_name``; ``transaction_id``, ``currency``, ``value`` ->
  ``transaction_id``, ``currency``, ``conversion_value``; ``items`` -> ``cart_data.items``
  (``item_id``, ``quantity``, ``price`` -> ``unit_price``, the rest
  ``additional_item_parameters``); ``coupon`` -> ``cart_data.coupon_codes``; every other
  parameter (``session_id``, ``engagement_time_msec``, ``session_number``, page fields,
  campaign fields, custom ones) -> ``additional_event_parameters`` as strings.

Where the page is silent, and why:

- Request-level MP fields (user, device, location, user data and properties) are copied
  to every event, since MP applies them to every event of its request.
- ``event_source`` is ``WEB``: the forwarder sends web streams only (``client_id``).
- Every GA4 event names the GA4 destination in ``destination_references``: an event with
  none goes to every destination of the request, and a ``campaign_details`` or
  ``page_view`` must never reach a Google Ads conversion action.
- A number becomes its shortest decimal text (``17``, ``65.32``); GA4 types parameters by
  their value, as it does for MP.
- Google Ads copy (``DATA_MANAGER_ADS_CONVERSIONS``): an event whose name is configured is
  also sent, as a separate event in the same request, to that conversion action with
  ``transaction_id``, value, currency, ``cart_data`` (``merchant_product_id`` = the item
  id), user data, consent and the device's agent and IP. It is added only when the event
  has a ``transaction_id`` (without one Ads cannot deduplicate it against the tag's own
  conversion), user identifiers (Ads refuses an event with none, and the API fails the
  whole request, GA4 event included) and ``ad_user_data`` is not denied. One request
  keeps the forwarder's ledger exact: both destinations take the event, or neither does.

``refusals(request, now)`` checks what the API documents as refusals that can be checked
without asking it (required fields, reserved names, the backdating window, list sizes,
code formats), with the API's own ``ErrorReason`` names and field paths, so the forwarder
dead-letters such an event with the reason the API would have given.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from shared.domain.validation import (
    MAX_BACKDATE_MICROS,
    RESERVED_EVENT_NAMES,
    RESERVED_EVENT_PREFIXES,
    RESERVED_PARAM_PREFIXES,
    finite_number,
)
from shared.errors import SettingsError

__all__ = [
    "ADS_ACCOUNT_TYPE",
    "DATA_MANAGER",
    "DESTINATION_NAMES",
    "GA4_ACCOUNT_TYPE",
    "GA4_REFERENCE",
    "MEASUREMENT_PROTOCOL",
    "AdsConversion",
    "DataManagerDestination",
    "DestinationPlan",
    "Refusal",
    "ads_conversions_from_json",
    "ads_reference",
    "dead_letter_reason",
    "ingest_request",
    "refusal_detail",
    "refusals",
    "rfc3339",
]

MEASUREMENT_PROTOCOL: Final = "measurement_protocol"
DATA_MANAGER: Final = "data_manager"
DESTINATION_NAMES: Final = frozenset({MEASUREMENT_PROTOCOL, DATA_MANAGER})
GA4_ACCOUNT_TYPE: Final = "GOOGLE_ANALYTICS_PROPERTY"
ADS_ACCOUNT_TYPE: Final = "GOOGLE_ADS"
GA4_REFERENCE: Final = "ga4"
MAX_USER_IDENTIFIERS: Final = 10
"""At most 10 ``user_identifiers`` per event (``UserData`` in the client's types)."""

STRUCTURED_PARAMS: Final = frozenset({"transaction_id", "currency", "value", "items", "coupon"})
ITEM_FIELDS: Final = frozenset({"item_id", "quantity", "price"})
CUSTOMER_TYPES: Final = frozenset({"NEW", "RETURNING", "REENGAGED"})
CUSTOMER_VALUE_BUCKETS: Final = frozenset({"LOW", "MEDIUM", "HIGH"})
CONSENT_WORDS: Final = {"GRANTED": "CONSENT_GRANTED", "DENIED": "CONSENT_DENIED"}
DEVICE_FIELDS: Final = (
    ("category", "category"),
    ("language", "language_code"),
    ("operating_system", "operating_system"),
    ("operating_system_version", "operating_system_version"),
    ("model", "model"),
    ("brand", "brand"),
    ("browser", "browser"),
    ("browser_version", "browser_version"),
)
LOCATION_FIELDS: Final = (
    ("city", "city"),
    ("region_id", "subdivision_code"),
    ("country_id", "region_code"),
    ("subcontinent_id", "subcontinent_code"),
    ("continent_id", "continent_code"),
)
ADDRESS_FIELDS: Final = (
    ("sha256_first_name", "given_name"),
    ("sha256_last_name", "family_name"),
    ("sha256_street", "address_line"),
    ("city", "city"),
    ("region", "administrative_area"),
    ("postal_code", "postal_code"),
    ("country", "region_code"),
)
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_DIGITS = re.compile(r"[0-9]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_REGION = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")
_M49 = re.compile(r"[0-9]{3}")
_SCREEN = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")


@dataclass(frozen=True)
class AdsConversion:
    """A Google Ads conversion action that also takes events of one name.

    ``customer_id`` owns the conversion action (the destination's ``operating_account``);
    ``login_customer_id``, when set, is the manager account the credentials use
    (``login_account``). All are digits only, as the API wants them (no hyphens).
    """

    customer_id: str
    conversion_action_id: str
    login_customer_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("customer_id", "conversion_action_id", "login_customer_id"):
            value = getattr(self, name)
            if value is None and name == "login_customer_id":
                continue
            if not isinstance(value, str) or not _DIGITS.fullmatch(value):
                raise ValueError(f"{name} must be digits only, got {value!r}")


@dataclass(frozen=True)
class DataManagerDestination:
    """Where one GA4 web stream's events go through the Data Manager API.

    ``property_id`` is the numeric GA4 property (the destination's operating account),
    ``measurement_id`` the stream (``product_destination_id``). ``login_account``, when
    set, is ``(account_type, account_id)`` of the account the credentials act through.
    ``ads_conversions`` maps an event name to a Google Ads conversion action that also
    takes that event.
    """

    property_id: str
    measurement_id: str
    login_account: tuple[str, str] | None = None
    ads_conversions: Mapping[str, AdsConversion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _DIGITS.fullmatch(self.property_id):
            raise SettingsError(
                f"the GA4 property id of {self.measurement_id} must be digits only, "
                f"got {self.property_id!r}"
            )


@dataclass(frozen=True)
class DestinationPlan:
    """Which API each stream (measurement id) is forwarded through.

    Invariant (checked on construction): every stream whose destination is
    ``data_manager`` has its ``DataManagerDestination``, so a missing property id fails
    the deployment at start instead of every event of that stream.
    """

    default: str = MEASUREMENT_PROTOCOL
    streams: Mapping[str, str] = field(default_factory=dict)
    """Measurement id -> destination name, overriding ``default``."""
    data_manager: Mapping[str, DataManagerDestination] = field(default_factory=dict)
    """Measurement id -> its Data Manager destination."""
    measurement_ids: frozenset[str] = frozenset()
    """Every stream the deployment serves (checked against the rules above)."""

    def __post_init__(self) -> None:
        for name in (self.default, *self.streams.values()):
            if name not in DESTINATION_NAMES:
                raise SettingsError(
                    f"unknown destination {name!r}; use one of {sorted(DESTINATION_NAMES)}"
                )
        missing = sorted(
            stream
            for stream in self.measurement_ids | frozenset(self.streams)
            if self.destination_of(stream) == DATA_MANAGER and stream not in self.data_manager
        )
        if missing:
            raise SettingsError(
                "no GA4 property id for the data_manager streams "
                f"{', '.join(missing)} (GA4_PROPERTY_ID, GA4_STREAM_PROPERTIES)"
            )

    def destination_of(self, measurement_id: str) -> str:
        return self.streams.get(measurement_id, self.default)

    def data_manager_for(self, measurement_id: str) -> DataManagerDestination:
        """The stream's Data Manager destination; ``SettingsError`` if it has none."""
        try:
            return self.data_manager[measurement_id]
        except KeyError:
            raise SettingsError(f"no Data Manager destination for {measurement_id}") from None

    @property
    def uses_data_manager(self) -> bool:
        return any(
            self.destination_of(stream) == DATA_MANAGER
            for stream in self.measurement_ids | frozenset(self.streams)
        )

    @property
    def uses_measurement_protocol(self) -> bool:
        streams = self.measurement_ids | frozenset(self.streams)
        return not streams or any(
            self.destination_of(stream) == MEASUREMENT_PROTOCOL for stream in streams
        )


def ads_conversions_from_json(value: object) -> dict[str, AdsConversion]:
    """``{"purchase": {"customer_id": "1234567890", "conversion_action_id": "987654321",
    "login_customer_id": "optional"}}`` -> event name -> ``AdsConversion``;
    ``ValueError`` (or ``TypeError``) naming the broken part."""
    if not isinstance(value, Mapping):
        raise TypeError("must be a JSON object of event name -> conversion action")
    conversions: dict[str, AdsConversion] = {}
    allowed = {"customer_id", "conversion_action_id", "login_customer_id"}
    for name, spec in value.items():
        if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an event name")
        if not isinstance(spec, Mapping):
            raise TypeError(f"{name}: must be an object")
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"{name}: unknown fields {unknown}; allowed {sorted(allowed)}")
        parts = {key: _account_digits(spec.get(key)) for key in allowed}
        if parts["customer_id"] is None or parts["conversion_action_id"] is None:
            raise ValueError(f"{name}: customer_id and conversion_action_id are required")
        try:
            conversions[name] = AdsConversion(
                customer_id=parts["customer_id"],
                conversion_action_id=parts["conversion_action_id"],
                login_customer_id=parts["login_customer_id"],
            )
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return conversions


def _account_digits(value: object) -> str | None:
    """An account id as digits: ``123-456-7890`` as Google Ads shows it is accepted."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.replace("-", "").strip() if isinstance(value, str) else repr(value)


def rfc3339(micros: int) -> str:
    """``2025-11-22T08:29:14.123456Z``: the JSON form of a protobuf ``Timestamp``."""
    moment = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    fraction = micros % 1_000_000
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:06d}Z" if fraction else f"{text}Z"


def _micros(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            moment = datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _text_value(value: object) -> str | None:
    """A parameter value as the API's string: numbers as their shortest decimal text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, str):
        return value
    return None


def _parameters(values: Mapping[str, Any], mapped: frozenset[str]) -> list[dict[str, str]]:
    """The values no structured field took, as ``{parameter_name, value}`` text pairs."""
    return [
        {"parameter_name": str(name), "value": text}
        for name, value in values.items()
        if name not in mapped and (text := _text_value(value)) is not None
    ]


def _integer(value: object) -> int | None:
    number = finite_number(value)
    return int(number) if number is not None and number.is_integer() else None


def _consent(consent: object) -> dict[str, str]:
    if not isinstance(consent, Mapping):
        return {}
    return {
        key: CONSENT_WORDS[word]
        for key in ("ad_user_data", "ad_personalization")
        if isinstance(word := consent.get(key), str) and word in CONSENT_WORDS
    }


def _user_properties(properties: object) -> dict[str, Any]:
    if not isinstance(properties, Mapping):
        return {}
    block: dict[str, Any] = {}
    extra: list[dict[str, str]] = []
    for name, wrapper in properties.items():
        value = wrapper.get("value") if isinstance(wrapper, Mapping) else None
        text = _text_value(value)
        if text is None:
            continue
        upper = text.upper()
        if name == "customer_type" and upper in CUSTOMER_TYPES:
            block["customer_type"] = upper
        elif name == "customer_value_bucket" and upper in CUSTOMER_VALUE_BUCKETS:
            block["customer_value_bucket"] = upper
        else:
            extra.append({"property_name": str(name), "value": text})
    if extra:
        block["additional_user_properties"] = extra
    return block


def _user_data(user_data: object) -> dict[str, Any]:
    if not isinstance(user_data, Mapping):
        return {}
    identifiers: list[dict[str, Any]] = [
        {"email_address": email} for email in _strings(user_data.get("sha256_email_address"))
    ]
    identifiers += [
        {"phone_number": phone} for phone in _strings(user_data.get("sha256_phone_number"))
    ]
    addresses = user_data.get("address")
    for address in addresses if isinstance(addresses, list) else [addresses]:
        if not isinstance(address, Mapping):
            continue
        info = {dm: address[mp] for mp, dm in ADDRESS_FIELDS if _text_value(address.get(mp))}
        if info:
            identifiers.append({"address": info})
    return {"user_identifiers": identifiers} if identifiers else {}


def _strings(value: object) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str) and item]


def _device_info(body: Mapping[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    device = body.get("device")
    if isinstance(device, Mapping):
        for mp, dm in DEVICE_FIELDS:
            if isinstance(device.get(mp), str) and device[mp]:
                info[dm] = device[mp]
        screen = device.get("screen_resolution")
        match = _SCREEN.fullmatch(screen) if isinstance(screen, str) else None
        if match:
            info["screen_width"], info["screen_height"] = int(match[1]), int(match[2])
    if isinstance(body.get("user_agent"), str) and body["user_agent"]:
        info["user_agent"] = body["user_agent"]
    if isinstance(body.get("ip_override"), str) and body["ip_override"]:
        info["ip_address"] = body["ip_override"]
    return info


def _event_location(location: object) -> dict[str, str]:
    if not isinstance(location, Mapping):
        return {}
    return {dm: location[mp] for mp, dm in LOCATION_FIELDS if isinstance(location.get(mp), str)}


def _cart_data(params: Mapping[str, Any], *, for_ads: bool) -> dict[str, Any]:
    """``items`` and ``coupon`` as ``cart_data``. Ads reads ``merchant_product_id``
    (the Merchant Center id); GA4 reads ``item_id`` and the other item parameters."""
    cart: dict[str, Any] = {}
    items = [_item(item, for_ads=for_ads) for item in params.get("items") or []]
    if items := [item for item in items if item]:
        cart["items"] = items
    coupon = _text_value(params.get("coupon"))
    if coupon:
        cart["coupon_codes"] = [coupon]
    return cart


def _item(item: object, *, for_ads: bool) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        return {}
    mapped: dict[str, Any] = {}
    item_id = _text_value(item.get("item_id"))
    if item_id:
        mapped["merchant_product_id" if for_ads else "item_id"] = item_id
    quantity = _integer(item.get("quantity"))
    if quantity is not None:
        mapped["quantity"] = quantity
    price = finite_number(item.get("price"))
    if price is not None:
        mapped["unit_price"] = price
    if for_ads:
        return mapped if item_id else {}
    extra = _parameters(item, ITEM_FIELDS)
    if extra:
        mapped["additional_item_parameters"] = extra
    return mapped


def _ga4_destination(destination: DataManagerDestination) -> dict[str, Any]:
    block: dict[str, Any] = {
        "reference": GA4_REFERENCE,
        "operating_account": {
            "account_type": GA4_ACCOUNT_TYPE,
            "account_id": destination.property_id,
        },
        "product_destination_id": destination.measurement_id,
    }
    if destination.login_account:
        account_type, account_id = destination.login_account
        block["login_account"] = {"account_type": account_type, "account_id": account_id}
    return block


def ads_reference(event_name: str) -> str:
    """The destination reference of the Ads conversion action for ``event_name``."""
    return f"ads_{event_name}"


def _ads_destination(event_name: str, conversion: AdsConversion) -> dict[str, Any]:
    block: dict[str, Any] = {
        "reference": ads_reference(event_name),
        "operating_account": {
            "account_type": ADS_ACCOUNT_TYPE,
            "account_id": conversion.customer_id,
        },
        "product_destination_id": conversion.conversion_action_id,
    }
    if conversion.login_customer_id:
        block["login_account"] = {
            "account_type": ADS_ACCOUNT_TYPE,
            "account_id": conversion.login_customer_id,
        }
    return block


def _params(event: Mapping[str, Any]) -> Mapping[str, Any]:
    params = event.get("params")
    return params if isinstance(params, Mapping) else {}


def _ga4_event(
    body: Mapping[str, Any], event: Mapping[str, Any], shared: Mapping[str, Any]
) -> dict[str, Any]:
    params = _params(event)
    micros = event.get("timestamp_micros", body.get("timestamp_micros"))
    mapped: dict[str, Any] = {"destination_references": [GA4_REFERENCE]}
    if isinstance(micros, int) and not isinstance(micros, bool):
        mapped["event_timestamp"] = rfc3339(micros)
    mapped["event_name"] = event.get("name")
    mapped["event_source"] = "WEB"
    mapped.update(shared)
    transaction_id = _text_value(params.get("transaction_id"))
    if transaction_id:
        mapped["transaction_id"] = transaction_id
    currency = _text_value(params.get("currency"))
    if currency:
        mapped["currency"] = currency
    value = finite_number(params.get("value"))
    if value is not None:
        mapped["conversion_value"] = value
    cart = _cart_data(params, for_ads=False)
    if cart:
        mapped["cart_data"] = cart
    extra = _parameters(params, STRUCTURED_PARAMS)
    if extra:
        mapped["additional_event_parameters"] = extra
    return mapped


def _ads_event(
    ga4_event: Mapping[str, Any], params: Mapping[str, Any], reference: str
) -> dict[str, Any]:
    mapped: dict[str, Any] = {"destination_references": [reference]}
    for key in ("transaction_id", "event_timestamp", "currency", "conversion_value"):
        if key in ga4_event:
            mapped[key] = ga4_event[key]
    mapped["event_source"] = "WEB"
    cart = _cart_data(params, for_ads=True)
    if cart:
        mapped["cart_data"] = cart
    for key in ("user_data", "consent"):
        if key in ga4_event:
            mapped[key] = ga4_event[key]
    device = {
        key: value
        for key, value in ga4_event.get("event_device_info", {}).items()
        if key in {"user_agent", "ip_address"}
    }
    if device:
        mapped["event_device_info"] = device
    return mapped


def _ads_allowed(ga4_event: Mapping[str, Any], consent: Mapping[str, str]) -> bool:
    """See the module docstring: transaction id, identifiers, ``ad_user_data`` not denied."""
    denied = "CONSENT_DENIED"
    own = ga4_event.get("consent", {})
    return (
        bool(ga4_event.get("transaction_id"))
        and bool(ga4_event.get("user_data"))
        and own.get("ad_user_data", consent.get("ad_user_data")) != denied
    )


def ingest_request(body: Mapping[str, Any], destination: DataManagerDestination) -> dict[str, Any]:
    """The ``IngestEventsRequest`` (plain dict) for one repaired MP body; see the module
    docstring for the mapping and its reasons."""
    shared: dict[str, Any] = {}
    for key in ("client_id", "user_id"):
        if isinstance(body.get(key), str) and body[key]:
            shared[key] = body[key]
    if body.get("non_personalized_ads") is True:
        shared["consent"] = {"ad_personalization": "CONSENT_DENIED"}
    blocks = {
        "user_properties": _user_properties(body.get("user_properties")),
        "user_data": _user_data(body.get("user_data")),
        "event_device_info": _device_info(body),
        "event_location": _event_location(body.get("user_location")),
    }
    shared.update({key: block for key, block in blocks.items() if block})
    consent = _consent(body.get("consent"))
    destinations = [_ga4_destination(destination)]
    events: list[dict[str, Any]] = []
    raw_events = body.get("events")
    for event in raw_events if isinstance(raw_events, list) else []:
        if not isinstance(event, Mapping):
            continue
        ga4_event = _ga4_event(body, event, shared)
        events.append(ga4_event)
        conversion = destination.ads_conversions.get(str(event.get("name")))
        if conversion is None or not _ads_allowed(ga4_event, consent):
            continue
        name = str(event.get("name"))
        if not any(d["reference"] == ads_reference(name) for d in destinations):
            destinations.append(_ads_destination(name, conversion))
        events.append(_ads_event(ga4_event, _params(event), ads_reference(name)))
    request: dict[str, Any] = {"destinations": destinations, "events": events}
    if consent:
        request["consent"] = consent
    if "user_data" in shared:
        request["encoding"] = "HEX"
    return request


@dataclass(frozen=True)
class Refusal:
    """One reason the API would refuse the request: its ``ErrorReason`` and field path."""

    reason: str
    field: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "field": self.field, "description": self.description}


def dead_letter_reason(api_reason: str) -> str:
    """The dead letter's reason for an API refusal: ``data_manager_`` + the API's
    ``ErrorReason`` (or status) in snake case, e.g. ``data_manager_event_time_invalid``;
    the same whether the API said it or ``refusals`` foresaw it."""
    word = re.sub(r"[^a-z0-9]+", "_", api_reason.lower()).strip("_")
    return f"data_manager_{word or 'rejected'}"


def refusal_detail(refused: Sequence[Refusal]) -> str:
    return json.dumps([r.as_dict() for r in refused], ensure_ascii=False)


def refusals(request: Mapping[str, Any], now_micros: int | None = None) -> list[Refusal]:
    """What the API would refuse in ``request``, checkable without asking it: required
    fields, reserved and invalid names, the backdating window, list sizes and code
    formats, each with the API's ``ErrorReason`` and field path (empty: none)."""
    found: list[Refusal] = []
    destinations = request.get("destinations") or []
    ga4_refs = {
        d.get("reference")
        for d in destinations
        if d.get("operating_account", {}).get("account_type") == GA4_ACCOUNT_TYPE
    }
    if not destinations:
        found.append(Refusal("REQUIRED_FIELD_MISSING", "destinations", "no destination"))
    if not request.get("events"):
        found.append(Refusal("REQUIRED_FIELD_MISSING", "events", "no event"))
    for index, event in enumerate(request.get("events") or []):
        path = f"events[{index}]"
        refs = set(event.get("destination_references") or []) or {
            d.get("reference") for d in destinations
        }
        to_ga4 = bool(refs & ga4_refs)
        found += _timestamp_refusals(event, path, now_micros)
        if len(refs & ga4_refs) > 1:
            found.append(
                Refusal(
                    "MULTIPLE_DESTINATIONS_FOR_GOOGLE_ANALYTICS_EVENT",
                    f"{path}.destination_references",
                    "an event can go to one Google Analytics destination only",
                )
            )
        if to_ga4:
            found += _ga4_refusals(event, path)
        else:
            found += _ads_refusals(event, path)
        found += _common_refusals(event, path)
    return found


def _timestamp_refusals(event: Mapping[str, Any], path: str, now: int | None) -> list[Refusal]:
    field_path = f"{path}.event_timestamp"
    micros = _micros(event.get("event_timestamp"))
    if micros is None:
        return [Refusal("REQUIRED_FIELD_MISSING", field_path, "event_timestamp is required")]
    if now is not None and micros < now - MAX_BACKDATE_MICROS:
        return [Refusal("EVENT_TIME_INVALID", field_path, "more than 72 hours old")]
    return []


def _ga4_refusals(event: Mapping[str, Any], path: str) -> list[Refusal]:
    found: list[Refusal] = []
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        found.append(Refusal("REQUIRED_FIELD_MISSING", f"{path}.event_name", "required for GA4"))
    elif (
        not _EVENT_NAME.fullmatch(name)
        or name in RESERVED_EVENT_NAMES
        or name.startswith(RESERVED_EVENT_PREFIXES)
    ):
        found.append(
            Refusal("INVALID_EVENT_NAME", f"{path}.event_name", f"{name!r} is not supported")
        )
    if event.get("client_id") and event.get("app_instance_id"):
        found.append(
            Refusal("BOTH_CLIENT_ID_AND_APP_INSTANCE_ID_NOT_ALLOWED", path, "one of the two")
        )
    elif not event.get("client_id") and not event.get("app_instance_id"):
        found.append(
            Refusal("REQUIRED_FIELD_MISSING", f"{path}.client_id", "required for web events")
        )
    named = (
        ("additional_event_parameters", "parameter_name", event.get("additional_event_parameters")),
        (
            "user_properties.additional_user_properties",
            "property_name",
            (event.get("user_properties") or {}).get("additional_user_properties"),
        ),
    )
    for list_path, name_key, entries in named:
        for position, entry in enumerate(entries or []):
            entry_name = str(entry.get(name_key, ""))
            if entry_name.startswith(RESERVED_PARAM_PREFIXES):
                found.append(
                    Refusal(
                        "RESERVED_NAME_USED",
                        f"{path}.{list_path}[{position}].{name_key}",
                        f"{entry_name!r} uses a reserved prefix",
                    )
                )
    return found


def _ads_refusals(event: Mapping[str, Any], path: str) -> list[Refusal]:
    found: list[Refusal] = []
    if not event.get("transaction_id"):
        found.append(
            Refusal(
                "REQUIRED_FIELD_MISSING",
                f"{path}.transaction_id",
                "required for a conversion sent beside the tag's",
            )
        )
    if not event.get("user_data"):
        found.append(Refusal("NO_IDENTIFIERS_PROVIDED", path, "no user or ad identifiers"))
    return found


def _common_refusals(event: Mapping[str, Any], path: str) -> list[Refusal]:
    found: list[Refusal] = []
    identifiers = (event.get("user_data") or {}).get("user_identifiers") or []
    if len(identifiers) > MAX_USER_IDENTIFIERS:
        found.append(
            Refusal(
                "TOO_MANY_ELEMENTS",
                f"{path}.user_data.user_identifiers",
                f"at most {MAX_USER_IDENTIFIERS} user identifiers",
            )
        )
    currency = event.get("currency")
    if currency is not None and not _CURRENCY.fullmatch(str(currency)):
        found.append(
            Refusal("INVALID_CURRENCY_CODE", f"{path}.currency", f"{currency!r} is not ISO 4217")
        )
    location = event.get("event_location") or {}
    for key, pattern, reason in (
        ("region_code", _REGION, "INVALID_REGION_CODE"),
        ("subdivision_code", _SUBDIVISION, "INVALID_SUBDIVISION_CODE"),
        ("subcontinent_code", _M49, "INVALID_SUBCONTINENT_CODE"),
        ("continent_code", _M49, "INVALID_CONTINENT_CODE"),
    ):
        value = location.get(key)
        if value is not None and not pattern.fullmatch(str(value)):
            found.append(Refusal(reason, f"{path}.event_location.{key}", f"{value!r} is malformed"))
    return found
