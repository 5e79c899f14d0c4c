"""GA4 Measurement Protocol rules, checked before a request leaves (pure, no I/O).

``validate(body)`` returns a repaired copy of the body and one ``Message`` per broken rule,
in GA4's own vocabulary (``fieldPath``, ``description``, ``validationCode`` with the codes
of ``/debug/mp/collect``), because ``/mp/collect`` answers 2xx even for a payload it drops.

Invariants:
- A repairable problem (a bad parameter, a too-long value, too many parameters or user
  properties) is repaired by dropping or truncating only the offending part, and reported
  with ``fatal=False``. The repaired body validates with no messages.
- A problem that no repair can fix without changing what the event means (no client id,
  a bad or reserved event name, too many events, a user id that is too long or looks like
  PII, a non-numeric session id, a body over 130 kB) is reported with ``fatal=True``; such
  a request must not be sent.
- The forwarder sends the repaired body when nothing is fatal; the local GA4 endpoint
  reports every message and never repairs (strict: any message makes a request invalid).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.domain.privacy import looks_like_pii

__all__ = [
    "MAX_BACKDATE_MICROS",
    "RESERVED_EVENT_NAMES",
    "RESERVED_EVENT_PREFIXES",
    "RESERVED_PARAM_PREFIXES",
    "Code",
    "Message",
    "Validation",
    "encode_body",
    "finite_number",
    "parse_body",
    "validate",
]


BODY_LIMIT_BYTES = 130_000
MAX_EVENTS = 25
MAX_PARAMS = 25
MAX_NAME_LENGTH = 40
MAX_VALUE_LENGTH = 100
VALUE_LENGTHS = {"page_location": 1000, "page_referrer": 420, "page_title": 300}
MAX_USER_PROPERTIES = 25
MAX_USER_PROPERTY_NAME = 24
MAX_USER_PROPERTY_VALUE = 36
MAX_USER_ID_LENGTH = 256
MAX_ITEMS = 200
MAX_ITEM_CUSTOM_PARAMS = 10
MAX_BACKDATE_MICROS = 72 * 3600 * 1_000_000

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "firebase_campaign",
        "firebase_in_app_message_action",
        "firebase_in_app_message_dismiss",
        "firebase_in_app_message_impression",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    }
)
RESERVED_EVENT_PREFIXES = ("_", "firebase_", "ga_", "google_")
RESERVED_PARAM_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
"""``firebase_`` covers GA4's one reserved parameter name, ``firebase_conversion``."""
RESERVED_USER_PROPERTIES = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)
RESERVED_USER_PROPERTY_PREFIXES = ("_", "firebase_", "ga_", "google_")
STANDARD_ITEM_PARAMS = frozenset(
    {
        "item_id",
        "item_name",
        "affiliation",
        "coupon",
        "discount",
        "index",
        "item_brand",
        "item_category",
        "item_category2",
        "item_category3",
        "item_category4",
        "item_category5",
        "item_list_id",
        "item_list_name",
        "item_variant",
        "location_id",
        "price",
        "quantity",
        "promotion_id",
        "promotion_name",
        "creative_name",
        "creative_slot",
    }
)
TOP_LEVEL_FIELDS = frozenset(
    {
        "client_id",
        "user_id",
        "timestamp_micros",
        "user_properties",
        "consent",
        "non_personalized_ads",
        "user_location",
        "ip_override",
        "device",
        "user_agent",
        "user_data",
        "validation_behavior",
        "events",
    }
)
CONSENT_FIELDS = frozenset({"ad_user_data", "ad_personalization"})
USER_LOCATION_FIELDS = frozenset(
    {"city", "region_id", "country_id", "subcontinent_id", "continent_id"}
)
DEVICE_FIELDS = frozenset(
    {
        "category",
        "language",
        "screen_resolution",
        "operating_system",
        "operating_system_version",
        "model",
        "brand",
        "browser",
        "browser_version",
    }
)


class Code(StrEnum):
    """GA4's ``ValidationCode`` values."""

    VALUE_INVALID = "VALUE_INVALID"
    VALUE_REQUIRED = "VALUE_REQUIRED"
    NAME_INVALID = "NAME_INVALID"
    NAME_RESERVED = "NAME_RESERVED"
    VALUE_OUT_OF_BOUNDS = "VALUE_OUT_OF_BOUNDS"
    EXCEEDED_MAX_ENTITIES = "EXCEEDED_MAX_ENTITIES"
    NAME_DUPLICATED = "NAME_DUPLICATED"


@dataclass(frozen=True)
class Message:
    field_path: str
    description: str
    code: Code
    fatal: bool = False
    """True when no repair makes the request valid: it must not be sent."""

    def as_ga4(self) -> dict[str, str]:
        return {
            "fieldPath": self.field_path,
            "description": self.description,
            "validationCode": self.code.value,
        }


@dataclass(frozen=True)
class Validation:
    body: dict[str, Any]
    """The repaired body (meaningless when not ``sendable``)."""
    messages: tuple[Message, ...] = field(default_factory=tuple)
    encoded: bytes = b""
    """``body`` as ``encode_body`` writes it: the bytes whose size was checked, so the
    bytes to send (empty when the body could not be encoded)."""

    @property
    def sendable(self) -> bool:
        return not any(message.fatal for message in self.messages)

    @property
    def fatal_messages(self) -> tuple[Message, ...]:
        return tuple(message for message in self.messages if message.fatal)


def encode_body(body: Any) -> bytes:
    """The exact bytes sent, so the size checked is the size GA4 receives."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)


def finite_number(value: object) -> float | None:
    """A finite number, or its decimal text (GA4's own examples send ``"100"``), as a
    float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _positive_number(value: object) -> bool:
    number = finite_number(value)
    return number is not None and number > 0


def _name_problem(
    name: str, limit: int, reserved: frozenset[str], prefixes: tuple[str, ...]
) -> tuple[Code, str] | None:
    if not NAME.fullmatch(name):
        return Code.NAME_INVALID, (
            "Names must start with an alphabetic character and hold only letters, digits "
            "and underscores"
        )
    if len(name) > limit:
        return Code.NAME_INVALID, f"Names must be {limit} characters or fewer"
    if name in reserved or name.startswith(prefixes):
        return Code.NAME_RESERVED, "The name is reserved by Google Analytics"
    return None


class _Checker:
    """One validation pass: collects messages while building the repaired body."""

    def __init__(self, now_micros: int | None) -> None:
        self.now_micros = now_micros
        self.messages: list[Message] = []

    def fatal(self, path: str, code: Code, description: str) -> None:
        self.messages.append(Message(path, description, code, fatal=True))

    def repaired(self, path: str, code: Code, description: str) -> None:
        self.messages.append(Message(path, description, code, fatal=False))

    def text(self, path: str, value: str, limit: int) -> str:
        if len(value) <= limit:
            return value
        self.repaired(path, Code.VALUE_OUT_OF_BOUNDS, f"value longer than {limit}: truncated")
        return value[:limit]

    def body(self, body: object) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            self.fatal("", Code.VALUE_INVALID, "the body must be a JSON object")
            return {}
        repaired: dict[str, Any] = {}
        for key, value in body.items():
            if key not in TOP_LEVEL_FIELDS:
                self.repaired(key, Code.NAME_INVALID, f"unknown field [{key}]: dropped")
            else:
                repaired[key] = value
        self.client_id(repaired)
        self.user_id(repaired)
        self.timestamp(repaired, "timestamp_micros")
        self.optional_sections(repaired)
        repaired["events"] = self.events(repaired.get("events"))
        return repaired

    def client_id(self, body: dict[str, Any]) -> None:
        value = body.get("client_id")
        if value is None or value == "":
            self.fatal("client_id", Code.VALUE_REQUIRED, "client_id is required")
        elif not isinstance(value, str):
            self.fatal("client_id", Code.VALUE_INVALID, "client_id must be a string")

    def user_id(self, body: dict[str, Any]) -> None:
        if "user_id" not in body:
            return
        value = body["user_id"]
        if value is None or value == "":
            self.repaired("user_id", Code.VALUE_INVALID, "empty user_id: dropped")
            del body["user_id"]
        elif not isinstance(value, str):
            self.fatal("user_id", Code.VALUE_INVALID, "user_id must be a string")
        elif len(value) > MAX_USER_ID_LENGTH:
            self.fatal(
                "user_id",
                Code.VALUE_OUT_OF_BOUNDS,
                f"user_id must be {MAX_USER_ID_LENGTH} characters or fewer",
            )
        elif looks_like_pii(value) is not None:
            self.fatal(
                "user_id",
                Code.VALUE_INVALID,
                "user_id looks like an email address or phone number (PII)",
            )

    def timestamp(self, container: dict[str, Any], path: str) -> None:
        key = path.rsplit(".", 1)[-1]
        if key not in container:
            return
        value = container[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fatal(path, Code.VALUE_INVALID, f"{key} must be a positive integer")
        elif self.now_micros is not None and value < self.now_micros - MAX_BACKDATE_MICROS:
            self.fatal(path, Code.VALUE_OUT_OF_BOUNDS, f"{key} is more than 72 hours old")

    def optional_sections(self, body: dict[str, Any]) -> None:
        if "user_properties" in body:
            body["user_properties"] = self.user_properties(body["user_properties"])
        for key, allowed in (
            ("consent", CONSENT_FIELDS),
            ("user_location", USER_LOCATION_FIELDS),
            ("device", DEVICE_FIELDS),
        ):
            if key in body:
                body[key] = self.string_object(key, body[key], allowed)
        if "consent" in body:
            body["consent"] = self.consent(body["consent"])
        if "ip_override" in body and not self.is_ip(body["ip_override"]):
            self.repaired("ip_override", Code.VALUE_INVALID, "not an IP address: dropped")
            del body["ip_override"]
        if "user_agent" in body and not isinstance(body["user_agent"], str):
            self.repaired("user_agent", Code.VALUE_INVALID, "user_agent must be a string: dropped")
            del body["user_agent"]
        for key in ("user_data", "non_personalized_ads", "validation_behavior"):
            if key in body and not isinstance(body[key], Mapping | bool | str):
                self.repaired(key, Code.VALUE_INVALID, f"{key} has the wrong type: dropped")
                del body[key]

    @staticmethod
    def is_ip(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True

    def string_object(self, path: str, value: object, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.repaired(path, Code.VALUE_INVALID, f"{path} must be an object: dropped")
            return {}
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if key not in allowed:
                self.repaired(f"{path}.{key}", Code.NAME_INVALID, f"unknown field [{key}]: dropped")
            elif not isinstance(item, str):
                self.repaired(f"{path}.{key}", Code.VALUE_INVALID, "must be a string: dropped")
            else:
                kept[key] = item
        return kept

    def consent(self, consent: dict[str, Any]) -> dict[str, Any]:
        kept = {}
        for key, value in consent.items():
            if value in {"GRANTED", "DENIED"}:
                kept[key] = value
            else:
                self.repaired(
                    f"consent.{key}", Code.VALUE_INVALID, "must be GRANTED or DENIED: dropped"
                )
        return kept

    def user_properties(self, properties: object) -> dict[str, Any]:
        if not isinstance(properties, Mapping):
            self.repaired("user_properties", Code.VALUE_INVALID, "must be an object: dropped")
            return {}
        kept: dict[str, Any] = {}
        for name, wrapper in properties.items():
            path = f"user_properties.{name}"
            problem = _name_problem(
                str(name),
                MAX_USER_PROPERTY_NAME,
                RESERVED_USER_PROPERTIES,
                RESERVED_USER_PROPERTY_PREFIXES,
            )
            if problem:
                self.repaired(path, problem[0], f"{problem[1]}: dropped")
                continue
            if not isinstance(wrapper, Mapping) or not _is_scalar(wrapper.get("value")):
                self.repaired(path, Code.VALUE_INVALID, 'must be {"value": scalar}: dropped')
                continue
            if len(kept) == MAX_USER_PROPERTIES:
                self.repaired(
                    path,
                    Code.EXCEEDED_MAX_ENTITIES,
                    f"more than {MAX_USER_PROPERTIES} user properties: dropped",
                )
                continue
            value = wrapper["value"]
            if isinstance(value, str):
                value = self.text(f"{path}.value", value, MAX_USER_PROPERTY_VALUE)
            kept[name] = {"value": value}
            if isinstance(wrapper.get("set_timestamp_micros"), int):
                kept[name]["set_timestamp_micros"] = wrapper["set_timestamp_micros"]
        return kept

    def events(self, events: object) -> list[Any]:
        if not isinstance(events, list) or not events:
            self.fatal("events", Code.VALUE_REQUIRED, "at least one event is required")
            return []
        if len(events) > MAX_EVENTS:
            self.fatal(
                "events",
                Code.EXCEEDED_MAX_ENTITIES,
                f"a request holds at most {MAX_EVENTS} events, not {len(events)}",
            )
        return [self.event(index, event) for index, event in enumerate(events)]

    def event(self, index: int, event: object) -> dict[str, Any]:
        path = f"events[{index}]"
        if not isinstance(event, Mapping):
            self.fatal(path, Code.VALUE_INVALID, f"Event at index: [{index}] is not an object.")
            return {}
        repaired: dict[str, Any] = {}
        for key, value in event.items():
            if key in {"name", "params", "timestamp_micros"}:
                repaired[key] = value
            else:
                self.repaired(f"{path}.{key}", Code.NAME_INVALID, f"unknown field [{key}]: dropped")
        self.event_name(index, repaired.get("name"))
        self.timestamp(repaired, f"{path}.timestamp_micros")
        params = repaired.get("params", {})
        if not isinstance(params, Mapping):
            self.fatal(f"{path}.params", Code.VALUE_INVALID, "params must be an object")
        else:
            repaired["params"] = self.params(f"{path}.params", params)
        return repaired

    def event_name(self, index: int, name: object) -> None:
        if name is None or name == "":
            self.fatal("events", Code.VALUE_REQUIRED, f"Event at index: [{index}] has no name.")
            return
        problem = _name_problem(
            str(name), MAX_NAME_LENGTH, RESERVED_EVENT_NAMES, RESERVED_EVENT_PREFIXES
        )
        if not isinstance(name, str) or problem:
            code, why = problem or (Code.NAME_INVALID, "Names must be strings")
            self.fatal(
                "events", code, f"Event at index: [{index}] has invalid name [{name}]. {why}."
            )

    def params(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for name, value in params.items():
            checked = self.param(f"{path}.{name}", name, value)
            if checked is None:
                continue
            if len(kept) == MAX_PARAMS:
                self.repaired(
                    f"{path}.{name}",
                    Code.EXCEEDED_MAX_ENTITIES,
                    f"more than {MAX_PARAMS} parameters: dropped",
                )
                continue
            kept[name] = checked[0]
        return kept

    def param(self, path: str, name: str, value: Any) -> tuple[Any] | None:
        """``(value,)`` to keep (possibly repaired), ``None`` to drop."""
        problem = _name_problem(name, MAX_NAME_LENGTH, frozenset(), RESERVED_PARAM_PREFIXES)
        if problem:
            self.repaired(path, problem[0], f"{problem[1]}: dropped")
            return None
        if name == "items" and isinstance(value, list):
            return (self.items(path, value),)
        if name == "session_id":
            return self.session_id(path, value)
        return self.param_value(path, name, value)

    def param_value(self, path: str, name: str, value: Any) -> tuple[Any] | None:
        if not _is_scalar(value):
            self.drop(path)
            return None
        if name == "engagement_time_msec" and not _positive_number(value):
            self.repaired(path, Code.VALUE_INVALID, "must be a positive number: dropped")
            return None
        if isinstance(value, str):
            return (self.text(path, value, VALUE_LENGTHS.get(name, MAX_VALUE_LENGTH)),)
        return (value,)

    def drop(self, path: str) -> None:
        self.repaired(path, Code.VALUE_INVALID, "values must be strings or numbers: dropped")

    def session_id(self, path: str, value: Any) -> tuple[Any] | None:
        if isinstance(value, int | str) and _positive_number(value) and float(value).is_integer():
            return (value,)
        self.fatal(path, Code.VALUE_INVALID, "session_id must be a positive whole number")
        return None

    def items(self, path: str, items: list[Any]) -> list[Any]:
        if len(items) > MAX_ITEMS:
            self.repaired(
                path, Code.EXCEEDED_MAX_ENTITIES, f"more than {MAX_ITEMS} items: extra dropped"
            )
        kept = []
        for index, item in enumerate(items[:MAX_ITEMS]):
            item_path = f"{path}[{index}]"
            if not isinstance(item, Mapping):
                self.repaired(item_path, Code.VALUE_INVALID, "items must be objects: dropped")
            elif not item.get("item_id") and not item.get("item_name"):
                self.repaired(
                    item_path, Code.VALUE_REQUIRED, "item_id or item_name required: dropped"
                )
            else:
                kept.append(self.item(item_path, item))
        return kept

    def item(self, path: str, item: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        custom = 0
        for name, value in item.items():
            if name == "items":
                self.drop(f"{path}.{name}")
                continue
            checked = self.param(f"{path}.{name}", name, value)
            if checked is None:
                continue
            if name not in STANDARD_ITEM_PARAMS:
                custom += 1
                if custom > MAX_ITEM_CUSTOM_PARAMS:
                    self.repaired(
                        f"{path}.{name}",
                        Code.EXCEEDED_MAX_ENTITIES,
                        f"more than {MAX_ITEM_CUSTOM_PARAMS} custom item parameters: dropped",
                    )
                    continue
            kept[name] = checked[0]
        return kept

    def size(self, body: dict[str, Any]) -> bytes:
        """The encoded body (empty if it cannot be encoded), fatal when GA4 would refuse
        its size."""
        try:
            encoded = encode_body(body)
        except ValueError:
            self.fatal("", Code.VALUE_INVALID, "the body holds a number JSON cannot encode")
            return b""
        size = len(encoded)
        if size >= BODY_LIMIT_BYTES:
            self.fatal(
                "",
                Code.VALUE_OUT_OF_BOUNDS,
                f"the body is {size} bytes; it must be smaller than {BODY_LIMIT_BYTES}",
            )
        return encoded


def validate(body: object, now_micros: int | None = None) -> Validation:
    """Check every GA4 rule; with ``now_micros``, also GA4's 72-hour backdating limit."""
    checker = _Checker(now_micros)
    repaired = checker.body(body)
    encoded = checker.size(repaired)
    return Validation(body=repaired, messages=tuple(checker.messages), encoded=encoded)


def parse_body(raw: bytes) -> tuple[object, tuple[Message, ...]]:
    """JSON text as received, with a message for invalid JSON or a name given twice."""
    duplicates: list[Message] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(
                    Message(
                        key, f"the name [{key}] appears twice in one object", Code.NAME_DUPLICATED
                    )
                )
            seen[key] = value
        return seen

    try:
        return json.loads(raw, object_pairs_hook=pairs), tuple(duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, (Message("", f"the body is not JSON: {exc}", Code.VALUE_INVALID, True),)
