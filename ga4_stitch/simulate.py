"""Realistic GA4 raw-event traffic with its ground truth, deterministic for a seed.

People own one to three devices; each device is a GA4 client id holding several sessions
separated by more than the 30-minute timeout, each session 2-15 events a few seconds to
eight minutes apart. Logins, logouts, shared devices, cross-domain hops (a new client id
on ``checkout.example-pay.com`` whose landing URL carries ``_gl``), late and duplicated
deliveries and a few malformed events are mixed in. Event times lie within the 48 hours
before ``start``.

Ground truth is computed from event time only, by two pure functions:

- ``assign_true_sessions``: a canonical client's valid events sorted by time, split where
  the gap to the previous event is 30 minutes or more;
- ``expected_identities``: an event's own user id, else the user of the latest event on
  the canonical client that carried one (every login does) with no logout in between,
  else none.

A cross-domain client's events count under the first domain's client (its canonical one).
Stages: plan people and events -> truth -> render GTM SC payloads -> deliver.

Each device is a real browser from ``ga4_stitch.agents`` (crawlers excluded) with a locale,
screen, documentation-range IP, usually an ``event_location``, and a Consent Mode state
rendered as ``x-ga-gcs``/``x-ga-gcd``. Payloads carry what sGTM's GA4 client puts in event
data (user agent and client hints, ``x-ga-mp2-user_properties`` with internal ``_`` keys,
``x-ga-system_properties``, ``engagement_time_msec`` on most events, ``user_engagement``
at the end of some pages, ``user_data`` on most purchases). Every session lands from one
of five kinds of traffic: UTM-tagged, Google Ads (``gclid``), organic search, a referring
site, or direct; no landing carries both UTMs and a click id, so the order GA4 gives
those two cannot change the truth.

The truth also states what GA4's own tag would report per event (``device_category``,
``browser``, ``operating_system``, ``country``, ``session_source``, ``user_properties``,
``consent``, ``user_data``, ``engagement_time_msec``); see ``TruthRecord``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ga4_stitch.agents import AGENTS, KnownAgent
from shared.domain.crossdomain.linker import encode_linker

MICROS = 1_000_000
MINUTE = 60 * MICROS
HOUR = 60 * MINUTE
SESSION_TIMEOUT_MICROS = 30 * MINUTE
SHOP = "https://shop.example.com"
PAY = "https://checkout.example-pay.com"
LOGOUT_EVENT = "logout"
ENGAGEMENT_EVENT = "user_engagement"
NOT_SET = "(not set)"
DIRECT_SOURCE = {"source": "(direct)", "medium": "(none)", "campaign": "(direct)"}
OWN_SITES = ("example.com", "example-pay.com")
"""Registrable domains of the shop and its payment domain: referrers there are no source."""
SEARCH_ENGINES = {"google.com": "google", "bing.com": "bing", "duckduckgo.com": "duckduckgo"}
"""Search engine referrer hosts (without ``www.``) and the source GA4 names them by."""
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; rates are shares of events unless named otherwise."""

    people: int
    seed: int
    start_micros: int
    window_hours: float = 48.0
    late_rate: float = 0.05
    late_max_seconds: float = 180.0
    very_late_rate: float = 0.01
    very_late_max_seconds: float = 7200.0
    duplicate_rate: float = 0.02
    malformed_rate: float = 0.004
    hop_rate: float = 0.6
    """Share of purchases on a numeric-client device that hop to the payment domain."""
    shared_device_rate: float = 0.05
    """Share of devices on which a second person also logs in."""
    measurement_id: str = "G-SIM0000001"


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class TrueSession:
    start_micros: int
    number: int


@dataclass(frozen=True)
class IdentityEvent:
    event_id: str
    time_micros: int
    user_id: str | None
    logout: bool


@dataclass(frozen=True)
class ExpectedIdentity:
    user_id: str | None
    after_logout: bool
    """True when the user is None only because a logout ended the client's link."""


def assign_true_sessions(
    events: Iterable[tuple[str, int]], timeout_micros: int = SESSION_TIMEOUT_MICROS
) -> dict[str, TrueSession]:
    """One client's ``(event_id, time_micros)`` events mapped to their true session:
    sorted by time, a new session wherever the gap to the previous event >= timeout."""
    result: dict[str, TrueSession] = {}
    previous: int | None = None
    current = TrueSession(0, 0)
    for event_id, time_micros in sorted(events, key=lambda item: (item[1], item[0])):
        if previous is None or time_micros - previous >= timeout_micros:
            current = TrueSession(time_micros, current.number + 1)
        result[event_id] = current
        previous = time_micros
    return result


def expected_identities(events: Iterable[IdentityEvent]) -> dict[str, ExpectedIdentity]:
    """One canonical client's events mapped to the user a resolver should give each, on
    event time: own user id first, else the latest linked user unless logged out since."""
    result: dict[str, ExpectedIdentity] = {}
    linked: str | None = None
    logged_out = False
    for event in sorted(events, key=lambda item: (item.time_micros, item.event_id)):
        user = event.user_id or linked
        result[event.event_id] = ExpectedIdentity(user, user is None and logged_out)
        if event.user_id:
            linked, logged_out = event.user_id, False
        if event.logout:
            linked, logged_out = None, True
    return result


@dataclass(frozen=True)
class TruthRecord:
    """One line of the truth file: what a correct resolver gives one distinct event."""

    event_id: str
    valid: bool
    expected_reason: str | None
    person: str
    client_id: str | None
    user_id: str | None
    after_logout: bool
    session_key: str | None
    session_start_micros: int | None
    session_number: int | None
    time_micros: int | None
    late: bool
    """First delivered after an event of the same client that is later in event time."""
    session_id_reachable: bool
    """An online resolver can give this event its true session id: false when its session's
    first event arrived after another event of that session."""
    delivered: int
    device_category: str | None = None
    """GA4's device category of the browser that sent the event (catalogue truth)."""
    browser: str | None = None
    operating_system: str | None = None
    country: str | None = None
    """ISO alpha-2 from the event's ``event_location``; None without one, since the local
    pipeline has no IP geolocation."""
    session_source: dict[str, str] | None = None
    """``{source, medium, campaign}`` of the event's true session, decided by that
    session's first event in event time (``true_traffic_source``)."""
    user_properties: dict[str, Any] = field(default_factory=dict)
    """The event's ``x-ga-mp2-user_properties`` without internal ``_`` keys."""
    consent: dict[str, str | None] = field(default_factory=dict)
    """``ad_user_data`` and ``ad_personalization``: ``GRANTED``, ``DENIED`` or None when the
    event's ``x-ga-gcd`` does not state it."""
    user_data: bool = False
    """The event carried ``user_data``."""
    engagement_time_msec: int = 0
    """The event's own ``engagement_time_msec``; 0 when it carried none."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_key(client_id: str, start_micros: int) -> str:
    return f"{client_id}|{start_micros}"


def true_traffic_source(page_location: str | None, page_referrer: str | None) -> dict[str, str]:
    """GA4's session source/medium/campaign for a session whose first event has these URLs.

    First match wins: any UTM parameter (missing values ``(not set)``); a ``gclid``
    (``google / cpc``); a search engine referrer (``organic``, ``(organic)``); any other
    referrer off the shop's own sites (its host without ``www.``, ``referral``,
    ``(referral)``); else ``(direct) / (none)``. Written apart from the pipeline's own
    classifier so the truth does not inherit its mistakes.
    """
    query: dict[str, str] = {}
    for name, value in parse_qsl(urlsplit(page_location or "").query):
        if value.strip():
            query.setdefault(name.lower(), value.strip())
    if any(name in query for name in UTM_KEYS):
        return {
            "source": query.get("utm_source", NOT_SET),
            "medium": query.get("utm_medium", NOT_SET),
            "campaign": query.get("utm_campaign", NOT_SET),
        }
    if "gclid" in query:
        return {"source": "google", "medium": "cpc", "campaign": NOT_SET}
    host = (urlsplit(page_referrer or "").hostname or "").removeprefix("www.")
    if not host or any(host == own or host.endswith("." + own) for own in OWN_SITES):
        return dict(DIRECT_SOURCE)
    if host in SEARCH_ENGINES:
        return {"source": SEARCH_ENGINES[host], "medium": "organic", "campaign": "(organic)"}
    return {"source": host, "medium": "referral", "campaign": "(referral)"}


# --------------------------------------------------------------------------- consent strings

GRANTED, DENIED, UNSET = 3, 2, 1
"""Consent Mode's 2-bit states inside an ``x-ga-gcd`` letter."""
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ConsentState = tuple[int, int]
"""(default, update) of one signal."""


def gcd_letter(default: int, update: int) -> str:
    """The base64url digit whose value has ``default`` in bits 2-3 and ``update`` in bits
    0-1 (with bit 5 set, as real strings have): ``l`` nothing, ``p`` denied, ``r`` denied
    then granted, ``t`` granted, ``v`` granted then granted, ``q`` denied then denied."""
    return _BASE64URL[32 | default << 2 | update]


def gcd_string(
    ad_storage: ConsentState,
    analytics_storage: ConsentState,
    ad_user_data: ConsentState,
    ad_personalization: ConsentState,
) -> str:
    """An ``x-ga-gcd`` value: version, the four signal letters at positions 2, 4, 6, 8."""
    signals = (ad_storage, analytics_storage, ad_user_data, ad_personalization)
    letters = [gcd_letter(*state) for state in signals]
    return "13{}3{}3{}3{}5l1".format(*letters)


def effective_consent(state: ConsentState) -> str | None:
    """MP's word for a signal: its update when set, else its default, else None."""
    value = state[1] if state[1] != UNSET else state[0]
    return {GRANTED: "GRANTED", DENIED: "DENIED"}.get(value)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedEvent:
    """A valid event as the browser produced it, before rendering and delivery."""

    event_id: str
    person: str
    device: str
    canonical_client: str
    sent_client: str
    time_micros: int
    event_name: str
    user_id: str | None
    params: dict[str, Any] = field(default_factory=dict)
    landing: bool = False


@dataclass
class _Person:
    key: str
    user_id: str | None
    properties: dict[str, str] = field(default_factory=dict)
    """User properties the site sets while this person is logged in."""


@dataclass(frozen=True)
class _Consent:
    """One device's Consent Mode state; ``gcd`` None: the page sends no consent strings."""

    gcs: str | None
    signals: tuple[ConsentState, ConsentState, ConsentState, ConsentState] | None

    @property
    def gcd(self) -> str | None:
        return gcd_string(*self.signals) if self.signals else None

    @property
    def mp(self) -> dict[str, str | None]:
        """What GA4 takes for ad_user_data and ad_personalization."""
        if self.signals is None:
            return {"ad_user_data": None, "ad_personalization": None}
        return {
            "ad_user_data": effective_consent(self.signals[2]),
            "ad_personalization": effective_consent(self.signals[3]),
        }

    @property
    def npa(self) -> str:
        """``_npa`` agrees with the gcd: "1" exactly when ad_personalization is denied."""
        return "1" if self.mp["ad_personalization"] == "DENIED" else "0"


@dataclass
class _Device:
    key: str
    client_id: str
    style: str
    """``bare``, ``prefixed`` (often sent as ``GA1.1.X.Y``) or ``server`` (managed id)."""
    agent: KnownAgent
    ip: str
    language: str
    timezone_offset: int
    screen: str
    location: dict[str, str] | None
    consent: _Consent
    itp_broken: bool
    pay_client: str | None = None
    logged_in: str | None = None
    seen: bool = False
    """An event of this device was planned: later sessions are not its first visit."""

    @property
    def user_agent(self) -> str:
        return self.agent.user_agent


@dataclass
class _Step:
    name: str
    domain: str
    params: dict[str, Any]
    landing: bool = False


_PEOPLE_AGENTS = tuple(agent for agent in AGENTS if not agent.truth.is_bot)
_SCREENS = {
    "desktop": ("1920x1080", "1536x864", "2560x1440", "1440x900", "1366x768", "1536x960"),
    "mobile": ("390x844", "393x852", "412x915", "360x800", "430x932"),
    "tablet": ("820x1180", "800x1280", "768x1024", "1024x1366"),
    "smart tv": ("1920x1080", "3840x2160", "1280x720"),
}
_LOCALES = (
    ("en-GB", -60, (("GB", "ENG"), ("GB", "SCT"))),
    ("en-US", 300, (("US", "CA"), ("US", "NY"), ("US", "TX"))),
    ("de-DE", -60, (("DE", "BY"), ("DE", "BE"))),
    ("fr-FR", -60, (("FR", "IDF"),)),
    ("nl-NL", -120, (("NL", "NH"),)),
    ("pt-BR", 180, (("BR", "SP"), ("BR", "RJ"))),
)
_D = (DENIED, DENIED)
_CONSENTS = (
    (_Consent("G111", ((DENIED, GRANTED),) * 4), 60),
    (_Consent("G111", ((GRANTED, GRANTED),) * 4), 10),
    (_Consent("G111", ((GRANTED, UNSET),) * 4), 6),
    (_Consent("G111", ((DENIED, GRANTED),) * 2 + ((DENIED, UNSET),) * 2), 8),
    (_Consent("G111", ((DENIED, GRANTED),) * 3 + (_D,)), 4),
    (_Consent("G101", ((DENIED, UNSET), (DENIED, GRANTED), (DENIED, UNSET), (DENIED, UNSET))), 7),
    (_Consent(None, None), 5),
)
"""Consent states and weights: analytics is granted in every one, so sessions exist; some
deny only ad_user_data and ad_personalization, one denies only personalisation."""
_MEMBERSHIPS = ("gold", "silver", "bronze")
_TAGGED = (
    ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "week_48"}, None),
    (
        {"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": "black_friday",
         "utm_content": "carousel"},
        "https://l.facebook.com/",
    ),
    (
        {"utm_source": "partner-blog", "utm_medium": "affiliate", "utm_campaign": "winter sale",
         "utm_term": "wool scarf"},
        "https://blog.example.org/",
    ),
    ({"utm_source": "instagram", "utm_medium": "social"}, "https://l.instagram.com/"),
)  # fmt: skip
_SEARCH_REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/")
_SITE_REFERRERS = (
    "https://l.facebook.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://www.reddit.com/r/malefashionadvice/",
)
LANDING_KINDS = ("tagged", "paid", "search", "referral", "direct")
_LANDING_WEIGHTS = (20, 10, 30, 12, 28)
_ITEMS = (
    ("SKU_001", "Blue T-Shirt", 19.99),
    ("SKU_002", "Socks", 9.99),
    ("SKU_003", "Denim Jacket", 89.0),
    ("SKU_004", "Canvas Sneakers", 59.5),
    ("SKU_005", "Wool Scarf", 24.0),
    ("SKU_006", "Rain Coat", 129.0),
    ("SKU_007", "Leather Belt", 35.0),
    ("SKU_008", "Beanie", 15.0),
    ("SKU_009", "Linen Shirt", 45.0),
    ("SKU_010", "Chinos", 65.0),
)
_CATEGORIES = ("men", "women", "shoes", "accessories", "sale")
_SEARCHES = ("jacket", "blue shirt", "socks", "gift", "sneakers")


class _Planner:
    """Draws people, devices and their sessions from one seeded random source."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.window_start = config.start_micros - int(config.window_hours * HOUR)
        self.last_session_start = config.start_micros - 2 * HOUR - 5 * MINUTE
        self.sequence = 0
        self.events: list[PlannedEvent] = []
        self.devices: list[_Device] = []
        self.properties: dict[str, dict[str, str]] = {}
        """User properties by user id, for whoever is logged in on a device."""

    def event_id(self) -> str:
        self.sequence += 1
        return f"e{self.sequence:07d}.{self.rng.getrandbits(32):08x}"

    def plan(self, progress: Callable[[int, int], None] | None = None) -> list[PlannedEvent]:
        people = [self._person(index) for index in range(self.config.people)]
        with_account = [person for person in people if person.user_id]
        for index, person in enumerate(people):
            for _ in range(self.rng.choices((1, 2, 3), weights=(55, 30, 15))[0]):
                others = [p for p in with_account if p is not person]
                shared = others and self.rng.random() < self.config.shared_device_rate
                guest = self.rng.choice(others) if shared else None
                self._device_timeline(person, guest)
            if progress is not None:
                progress(index + 1, len(people))
        return self.events

    def _person(self, index: int) -> _Person:
        has_account = self.rng.random() < 0.7
        person = _Person(f"person-{index:05d}", f"cust-{index:06d}" if has_account else None)
        if person.user_id is not None:
            person.properties = {
                "membership": self.rng.choices(_MEMBERSHIPS, weights=(1, 3, 6))[0],
                "newsletter": self.rng.choice(("yes", "no")),
            }
            self.properties[person.user_id] = person.properties
        return person

    def _device(self, first_micros: int) -> _Device:
        rng = self.rng
        agent = rng.choice(_PEOPLE_AGENTS)
        language, offset, regions = rng.choice(_LOCALES)
        country, region = rng.choice(regions)
        consents = [consent for consent, _ in _CONSENTS]
        consent = rng.choices(consents, weights=[weight for _, weight in _CONSENTS])[0]
        if rng.random() < 0.8:
            ip = f"{rng.choice(('203.0.113', '198.51.100', '192.0.2'))}.{rng.randint(1, 254)}"
        else:
            ip = f"2001:db8:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
        webkit = agent.truth.operating_system == "iOS" or agent.truth.browser == "Safari"
        style = rng.choices(("bare", "prefixed", "server"), weights=(77, 17, 6))[0]
        first_seconds = first_micros // MICROS
        if rng.random() < 0.65:
            first_seconds -= rng.randint(86_400, 400 * 86_400)
        if style == "server":
            client_id = f"{base64.b64encode(rng.randbytes(32)).decode()}.{first_seconds}"
        else:
            client_id = f"{rng.randint(100_000_000, 2_147_483_647)}.{first_seconds}"
        device = _Device(
            key=f"device-{len(self.devices):05d}",
            client_id=client_id,
            style=style,
            agent=agent,
            ip=ip,
            language=language,
            timezone_offset=offset,
            screen=rng.choice(_SCREENS[agent.truth.category or "desktop"]),
            location={"country": country, "region": region} if rng.random() < 0.88 else None,
            consent=consent,
            itp_broken=webkit and rng.random() < 0.5,
        )
        self.devices.append(device)
        return device

    def _device_timeline(self, owner: _Person, guest: _Person | None) -> None:
        rng = self.rng
        start = self.window_start + rng.randint(0, 30 * HOUR)
        device = self._device(start)
        target = rng.choices((1, 2, 3, 4, 5, 6), weights=(18, 24, 22, 16, 11, 9))[0]
        guest_slots: set[int] = set()
        if guest is not None:
            target = max(target, 3)
            guest_slots = set(rng.sample(range(1, target), rng.choice((1, 2))))
        for slot in range(target):
            if slot > 0:
                start = self.events[-1].time_micros + _session_gap(rng)
                if start > self.last_session_start:
                    return
            person = guest if guest is not None and slot in guest_slots else owner
            self._session(device, person, start, slot + 1, is_guest=person is guest)

    def _session(
        self, device: _Device, person: _Person, start: int, number: int, *, is_guest: bool
    ) -> None:
        steps = _session_steps(
            self.rng,
            can_login=person.user_id is not None,
            logged_in=device.logged_in is not None,
            force_login=is_guest,
            can_hop=device.style != "server",
            hop_rate=self.config.hop_rate,
        )
        time_micros = start
        for index, step in enumerate(steps):
            if index:
                gap = _intra_session_gap(self.rng)
                time_micros += gap
                if step.name == ENGAGEMENT_EVENT or self.rng.random() < 0.9:
                    step.params.setdefault(
                        "engagement_time_msec", self.rng.randint(100, min(gap // 1000, 60_000))
                    )
            else:
                first_visit = not device.seen
                device.seen = True
                step.params["x-ga-system_properties"] = (
                    {"fv": "1", "ss": "1"} if first_visit else {"ss": "1"}
                )
            step.params["x-ga-request_count"] = index + 1
            self._materialize(device, person, step, time_micros, (start, number))

    def _materialize(
        self,
        device: _Device,
        person: _Person,
        step: _Step,
        time_micros: int,
        session: tuple[int, int],
    ) -> None:
        params = dict(step.params)
        user_id = self._user_for(device, person, step.name)
        if step.domain == PAY:
            sent = self._pay_client(device, time_micros, new=step.landing)
            user_id = None
            if step.landing:
                params["page_location"] += "&_gl=" + encode_linker(
                    device.client_id,
                    device.user_agent,
                    time_micros // MICROS,
                    language=device.language,
                    timezone_offset_minutes=device.timezone_offset,
                    measurement_id=self.config.measurement_id,
                    session_id=session[0] // MICROS,
                    session_number=session[1],
                )
        else:
            sent = device.client_id
            if device.style == "prefixed" and self.rng.random() < 0.7:
                sent = f"GA1.1.{device.client_id}"
        properties = {"_npa": device.consent.npa}
        if step.domain == SHOP and device.logged_in is not None:
            properties.update(self.properties.get(device.logged_in, {}))
        params["x-ga-mp2-user_properties"] = properties
        if step.name == "purchase" and self.rng.random() < 0.85:
            params["user_data"] = self._user_data(person)
        self.events.append(
            PlannedEvent(
                event_id=self.event_id(),
                person=person.key,
                device=device.key,
                canonical_client=device.client_id,
                sent_client=sent,
                time_micros=time_micros,
                event_name=step.name,
                user_id=user_id,
                params=params,
                landing=step.landing,
            )
        )

    def _user_for(self, device: _Device, person: _Person, name: str) -> str | None:
        """The user id the site sends, moving the device's login state along."""
        if name == "login":
            device.logged_in = person.user_id
            return person.user_id
        if name == LOGOUT_EVENT:
            user, device.logged_in = device.logged_in, None
            return user
        if device.logged_in and self.rng.random() < 0.6:
            return device.logged_in
        return None

    def _user_data(self, person: _Person) -> dict[str, Any]:
        """What the checkout page hands the tag: always the email's hash, sometimes the
        plain email, phone and address too (the pipeline must hash or drop them)."""
        rng = self.rng
        email = f"{person.key.replace('-', '.')}@example.org"
        data: dict[str, Any] = {"sha256_email_address": hashlib.sha256(email.encode()).hexdigest()}
        if rng.random() < 0.4:
            data["email_address"] = email
        if rng.random() < 0.3:
            data["phone_number"] = f"+49151{rng.randint(1_000_000, 9_999_999)}"
        if rng.random() < 0.2:
            data["address"] = {
                "first_name": "Alex",
                "last_name": "Example",
                "street": f"{rng.randint(1, 200)} Example Street",
                "city": "Berlin",
                "region": "BE",
                "postal_code": "10115",
                "country": "DE",
            }
        return data

    def _pay_client(self, device: _Device, time_micros: int, *, new: bool) -> str:
        """Each hop lands on a fresh client id of the payment domain, named after its time."""
        if new or device.pay_client is None:
            number = self.rng.randint(100_000_000, 2_147_483_647)
            device.pay_client = f"{number}.{time_micros // MICROS}"
        return device.pay_client


def _session_gap(rng: random.Random) -> int:
    """Time from a session's last event to the next session's first: 35 min to days."""
    kind = rng.random()
    if kind < 0.45:
        return rng.randint(35 * MINUTE, 3 * HOUR)
    if kind < 0.85:
        return rng.randint(3 * HOUR, 20 * HOUR)
    return rng.randint(20 * HOUR, 40 * HOUR)


def _intra_session_gap(rng: random.Random) -> int:
    """Time between two events of one session: 5 s to 8 min, mostly short."""
    if rng.random() < 0.7:
        return rng.randint(5 * MICROS, 90 * MICROS)
    return rng.randint(90 * MICROS, 8 * MINUTE)


# --------------------------------------------------------------------------- session scripts


@dataclass
class _Script:
    """The page a session is on, its cart and login state while its steps are drawn."""

    rng: random.Random
    steps: list[_Step] = field(default_factory=list)
    location: str = SHOP + "/"
    title: str = "Example Shop"
    page_id: int = 0
    item: tuple[str, str, float] | None = None
    cart: list[tuple[str, str, float]] = field(default_factory=list)
    logged_in: bool = False

    def add(self, name: str, landing: bool = False, **extra: Any) -> None:
        domain = PAY if self.location.startswith(PAY) else SHOP
        params: dict[str, Any] = {
            "page_location": self.location,
            "page_title": self.title,
            "x-ga-page_id": self.page_id,
        }
        params.update(extra)
        self.steps.append(_Step(name, domain, params, landing))

    def page_view(
        self,
        location: str,
        title: str,
        referrer: str | None,
        landing: bool = False,
        **extra: Any,
    ) -> None:
        if self.steps and self.rng.random() < 0.35:
            self.add(ENGAGEMENT_EVENT)
        self.location, self.title = location, title
        self.page_id = self.rng.randint(100_000_000, 2_147_483_647)
        self.add("page_view", landing=landing, **extra)
        if referrer is not None:
            self.steps[-1].params["page_referrer"] = referrer

    def browse(self) -> None:
        rng, previous = self.rng, self.location
        kind = rng.choices(("home", "category", "product", "search"), weights=(15, 25, 45, 15))[0]
        if kind == "product":
            self.item = rng.choice(_ITEMS)
            number = _ITEMS.index(self.item) + 1
            self.page_view(f"{SHOP}/products/{number}", f"{self.item[1]} | Example Shop", previous)
        elif kind == "category":
            name = rng.choice(_CATEGORIES)
            self.page_view(f"{SHOP}/category/{name}", f"{name.title()} | Example Shop", previous)
        elif kind == "search":
            term = rng.choice(_SEARCHES)
            query = term.replace(" ", "+")
            self.page_view(f"{SHOP}/search?q={query}", f"Search: {term} | Example Shop", previous)
        else:
            self.page_view(f"{SHOP}/", "Example Shop", previous)


def _session_steps(
    rng: random.Random,
    *,
    can_login: bool,
    logged_in: bool,
    force_login: bool,
    can_hop: bool,
    hop_rate: float,
) -> list[_Step]:
    """The event names and pages of one session: 2-15 steps."""
    target = rng.randint(3 if force_login else 2, 15)
    script = _Script(rng, logged_in=logged_in)
    _entry(script)
    while len(script.steps) < target:
        if force_login and len(script.steps) == 1:
            action = "login"
        else:
            action = _next_action(script, can_login=can_login, guest=force_login)
        _perform(script, action, can_hop=can_hop, hop_rate=hop_rate)
    return script.steps[:15]


def _entry(script: _Script) -> None:
    """The session's landing page_view, from one of ``LANDING_KINDS``."""
    rng = script.rng
    kind = rng.choices(LANDING_KINDS, weights=_LANDING_WEIGHTS)[0]
    query, referrer = "", None
    if kind == "tagged":
        tags, referrer = rng.choice(_TAGGED)
        query = urlencode(tags)
    elif kind == "paid":
        token = base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=")
        query, referrer = f"gclid={token}", "https://www.google.com/"
    elif kind == "search":
        referrer = rng.choice(_SEARCH_REFERRERS)
    elif kind == "referral":
        referrer = rng.choice(_SITE_REFERRERS)
    location = f"{SHOP}/?{query}" if query else f"{SHOP}/"
    script.page_view(location, "Example Shop", referrer)


def _next_action(script: _Script, *, can_login: bool, guest: bool) -> str:
    choices = {"browse": 40.0, "scroll": 18.0}
    if script.item is not None:
        choices["view_item"] = 10.0
        choices["add_to_cart"] = 16.0
    if script.cart:
        choices["begin_checkout"] = 16.0
    if can_login and not script.logged_in:
        choices["login"] = 7.0
    if script.logged_in:
        choices[LOGOUT_EVENT] = 6.0 if guest else 2.0
    names = list(choices)
    return script.rng.choices(names, weights=[choices[name] for name in names])[0]


def _perform(script: _Script, action: str, *, can_hop: bool, hop_rate: float) -> None:
    rng = script.rng
    if action == "browse":
        script.browse()
    elif action == "scroll":
        script.add("scroll", percent_scrolled=90)
    elif action in {"view_item", "add_to_cart"} and script.item is not None:
        if action == "add_to_cart":
            script.cart.append(script.item)
        script.add(action, **_ecommerce([script.item]))
    elif action == "begin_checkout":
        script.page_view(f"{SHOP}/checkout", "Checkout | Example Shop", script.location)
        script.add("begin_checkout", **_ecommerce(script.cart))
        if rng.random() < 0.75:
            _purchase(script, hop=can_hop and rng.random() < hop_rate)
    elif action == "login":
        script.page_view(f"{SHOP}/account/login", "Sign in | Example Shop", script.location)
        script.add("login", method=rng.choice(("password", "google")))
        script.logged_in = True
    elif action == LOGOUT_EVENT:
        script.location = f"{SHOP}/account/logout"
        script.add(LOGOUT_EVENT)
        script.logged_in = False


def _purchase(script: _Script, *, hop: bool) -> None:
    rng = script.rng
    order = f"T-{rng.randint(100_000, 999_999)}"
    ecommerce = _ecommerce(script.cart)
    ecommerce.update(transaction_id=order, tax=round(ecommerce["value"] * 0.05, 2), shipping=4.95)
    if hop:
        script.page_view(
            f"{PAY}/pay?order={order}",
            "Payment | Example Pay",
            f"{SHOP}/checkout",
            landing=True,
        )
        script.page_view(
            f"{PAY}/thank-you?order={order}", "Thank you | Example Pay", f"{PAY}/pay?order={order}"
        )
        script.add("purchase", **ecommerce)
        if rng.random() < 0.5:
            script.page_view(f"{SHOP}/order/{order}", "Your order | Example Shop", f"{PAY}/")
    else:
        script.page_view(
            f"{SHOP}/checkout/thank-you", "Thank you | Example Shop", f"{SHOP}/checkout"
        )
        script.add("purchase", **ecommerce)
    script.cart.clear()


def _ecommerce(items: Sequence[tuple[str, str, float]]) -> dict[str, Any]:
    counts = Counter(items)
    lines = [
        {"item_id": sku, "item_name": name, "price": price, "quantity": quantity}
        for (sku, name, price), quantity in counts.items()
    ]
    value = round(sum(price * quantity for (_, _, price), quantity in counts.items()), 2)
    return {"currency": "EUR", "value": value, "items": lines}


# --------------------------------------------------------------------------- truth, render, deliver


@dataclass(frozen=True)
class Simulation:
    """Raw events in delivery order, one truth record per distinct event id, and counts."""

    deliveries: list[dict[str, Any]]
    truth: list[TruthRecord]
    stats: dict[str, int]


def simulate(
    config: SimulationConfig, progress: Callable[[int, int], None] | None = None
) -> Simulation:
    """The whole stream for ``config``; the same config always gives the same stream."""
    planner = _Planner(config)
    planned = planner.plan(progress)
    devices = {device.key: device for device in planner.devices}
    sessions, identities = compute_truth(planned)
    sources = session_sources(planned, sessions)
    browser = _browser_sessions(planned, sessions, devices, planner.rng)
    payloads = {
        event.event_id: _render(event, devices[event.device], browser[event.event_id], config)
        for event in planned
    }
    malformed = _malformed_copies(planned, payloads, planner, config.malformed_rate)
    items = [(e.event_id, e.time_micros, e.landing, payloads[e.event_id]) for e in planned]
    items += [(m.event_id, m.time_micros, False, m.payload) for m in malformed]
    delivery = _deliver(items, planner.rng, config)
    late = _out_of_order(planned, delivery.first_position)
    opened_late = _sessions_opened_late(planned, sessions, delivery.first_position)
    truth = [
        _valid_record(
            e,
            sessions[e.event_id],
            identities[e.event_id],
            devices[e.device],
            sources,
            late=e.event_id in late,
            reachable=(e.canonical_client, sessions[e.event_id].start_micros) not in opened_late,
            delivery=delivery,
        )
        for e in planned
    ]
    truth += [_invalid_record(m, delivery) for m in malformed]
    stats = _stats(
        config=config,
        planner=planner,
        planned=planned,
        truth=truth,
        browser=browser,
        sessions=sessions,
        delivery=delivery,
    )
    return Simulation(delivery.payloads, truth, stats)


def compute_truth(
    planned: Sequence[PlannedEvent],
) -> tuple[dict[str, TrueSession], dict[str, ExpectedIdentity]]:
    """True sessions and expected users of valid events, per canonical client."""
    by_client: dict[str, list[PlannedEvent]] = defaultdict(list)
    for event in planned:
        by_client[event.canonical_client].append(event)
    sessions: dict[str, TrueSession] = {}
    identities: dict[str, ExpectedIdentity] = {}
    for events in by_client.values():
        sessions.update(assign_true_sessions((e.event_id, e.time_micros) for e in events))
        identities.update(
            expected_identities(
                IdentityEvent(e.event_id, e.time_micros, e.user_id, e.event_name == LOGOUT_EVENT)
                for e in events
            )
        )
    return sessions, identities


def session_sources(
    planned: Sequence[PlannedEvent], sessions: dict[str, TrueSession]
) -> dict[str, dict[str, str]]:
    """Each true session's traffic source by session key, from its first event in event
    time (ties broken by event id), whatever order the events were planned in."""
    first: dict[str, PlannedEvent] = {}
    for event in planned:
        key = session_key(event.canonical_client, sessions[event.event_id].start_micros)
        current = first.get(key)
        if current is None or (event.time_micros, event.event_id) < (
            current.time_micros,
            current.event_id,
        ):
            first[key] = event
    return {
        key: true_traffic_source(
            event.params.get("page_location"), event.params.get("page_referrer")
        )
        for key, event in first.items()
    }


def _browser_sessions(
    planned: Sequence[PlannedEvent],
    sessions: dict[str, TrueSession],
    devices: dict[str, _Device],
    rng: random.Random,
) -> dict[str, tuple[int, int]]:
    """The browser's own ``ga_session_id`` and ``ga_session_number`` per event: the true
    ones, except that an ITP-broken browser loses its cookies in about half its sessions
    and restarts its count (number 1, a new id) at some event of that session."""
    by_session: dict[tuple[str, int], list[PlannedEvent]] = defaultdict(list)
    for event in planned:
        by_session[(event.canonical_client, sessions[event.event_id].start_micros)].append(event)
    result: dict[str, tuple[int, int]] = {}
    for (_, start), events in by_session.items():
        events.sort(key=lambda e: (e.time_micros, e.event_id))
        values = [(start // MICROS, sessions[events[0].event_id].number)] * len(events)
        if devices[events[0].device].itp_broken and rng.random() < 0.5:
            reset = rng.randrange(len(events))
            values[reset:] = [(events[reset].time_micros // MICROS, 1)] * (len(events) - reset)
        result.update(zip((e.event_id for e in events), values, strict=True))
    return result


def _render(
    event: PlannedEvent, device: _Device, browser: tuple[int, int], config: SimulationConfig
) -> dict[str, Any]:
    """The GTM SC event data the publishing tag sends for one event."""
    params = dict(event.params)
    payload: dict[str, Any] = {
        "x-ga-protocol_version": "2",
        "x-ga-measurement_id": config.measurement_id,
        "x-ga-page_id": params.pop("x-ga-page_id"),
        "x-ga-request_count": params.pop("x-ga-request_count"),
    }
    if device.consent.gcs is not None:
        payload["x-ga-gcs"] = device.consent.gcs
    if device.consent.gcd is not None:
        payload["x-ga-gcd"] = device.consent.gcd
    if device.style == "server":
        payload["x-ga-mp2-tt"] = "internal_cookie"
    payload.update(
        client_id=event.sent_client,
        event_id=event.event_id,
        timestamp_micros=event.time_micros,
        language=device.language.lower(),
        screen_resolution=device.screen,
        ga_session_id=str(browser[0]),
        ga_session_number=browser[1],
        event_name=event.event_name,
    )
    if event.user_id is not None:
        payload["user_id"] = event.user_id
    payload.update(params)
    payload["ip_override"] = device.ip
    payload["user_agent"] = device.user_agent
    if device.agent.client_hints is not None:
        payload["client_hints"] = copy.deepcopy(dict(device.agent.client_hints))
    if device.location is not None:
        payload["event_location"] = dict(device.location)
    return payload


@dataclass(frozen=True)
class _Malformed:
    event_id: str
    reason: str
    person: str
    time_micros: int
    payload: dict[str, Any]


def _drop_client_id(payload: dict[str, Any]) -> str:
    del payload["client_id"]
    return "missing_client_id"


def _empty_client_id(payload: dict[str, Any]) -> str:
    payload["client_id"] = ""
    return "missing_client_id"


def _drop_event_name(payload: dict[str, Any]) -> str:
    del payload["event_name"]
    return "missing_event_name"


def _undefined_client_id(payload: dict[str, Any]) -> str:
    payload["client_id"] = "undefined"
    return "malformed_client_id"


def _unparseable_time(payload: dict[str, Any]) -> str:
    payload["timestamp_micros"] = "yesterday, around noon"
    return "unparseable_time"


DEFECTS: tuple[Callable[[dict[str, Any]], str], ...] = (
    _drop_client_id,
    _empty_client_id,
    _drop_event_name,
    _undefined_client_id,
    _unparseable_time,
)


def _malformed_copies(
    planned: Sequence[PlannedEvent],
    payloads: dict[str, dict[str, Any]],
    planner: _Planner,
    rate: float,
) -> list[_Malformed]:
    """Broken copies (new event ids) of anonymous browsing events, every defect at least
    once; copies rather than corrupted originals, so the valid stream's truth stands."""
    candidates = [
        e
        for e in planned
        if e.event_name in {"page_view", "scroll", "view_item"} and e.user_id is None
        if not e.landing
    ]
    if rate <= 0 or not candidates:
        return []
    result = []
    for index in range(max(len(DEFECTS), round(len(planned) * rate))):
        source = planner.rng.choice(candidates)
        payload = dict(payloads[source.event_id])
        payload["event_id"] = planner.event_id()
        reason = DEFECTS[index % len(DEFECTS)](payload)
        result.append(
            _Malformed(payload["event_id"], reason, source.person, source.time_micros, payload)
        )
    return result


@dataclass
class _Delivery:
    payloads: list[dict[str, Any]] = field(default_factory=list)
    count: Counter[str] = field(default_factory=Counter)
    first_position: dict[str, int] = field(default_factory=dict)
    delayed: Counter[str] = field(default_factory=Counter)


def _deliver(
    items: Sequence[tuple[str, int, bool, dict[str, Any]]],
    rng: random.Random,
    config: SimulationConfig,
) -> _Delivery:
    """Delivery order: each event at its time plus a delay (none for hop landings), and
    some redelivered with the same payload shortly after or much later."""
    schedule: list[tuple[int, int, str, dict[str, Any]]] = []
    result = _Delivery()
    for event_id, time_micros, landing, payload in items:
        kind, delay = ("on_time", 0) if landing else _delay(rng, config)
        result.delayed[kind] += 1
        schedule.append((time_micros + delay, len(schedule), event_id, payload))
        if rng.random() < config.duplicate_rate:
            again = (
                rng.randint(1 * MICROS, 60 * MICROS)
                if rng.random() < 0.6
                else rng.randint(10 * MINUTE, 6 * HOUR)
            )
            schedule.append((time_micros + delay + again, len(schedule), event_id, payload))
    schedule.sort(key=lambda entry: (entry[0], entry[1]))
    for position, (_, _, event_id, payload) in enumerate(schedule):
        result.payloads.append(payload)
        result.count[event_id] += 1
        result.first_position.setdefault(event_id, position)
    return result


def _delay(rng: random.Random, config: SimulationConfig) -> tuple[str, int]:
    draw = rng.random()
    late_max = int(config.late_max_seconds * MICROS)
    if draw < config.very_late_rate:
        return "very_late", rng.randint(late_max, int(config.very_late_max_seconds * MICROS))
    if draw < config.very_late_rate + config.late_rate:
        return "late", rng.randint(1 * MICROS, late_max)
    return "on_time", 0


def _out_of_order(planned: Sequence[PlannedEvent], first_position: dict[str, int]) -> set[str]:
    """Events first delivered after a later (in event time) event of the same client."""
    late: set[str] = set()
    newest: dict[str, int] = {}
    for event in sorted(planned, key=lambda e: first_position[e.event_id]):
        client = event.canonical_client
        if event.time_micros < newest.get(client, event.time_micros):
            late.add(event.event_id)
        newest[client] = max(newest.get(client, event.time_micros), event.time_micros)
    return late


def _sessions_opened_late(
    planned: Sequence[PlannedEvent],
    sessions: dict[str, TrueSession],
    first_position: dict[str, int],
) -> set[tuple[str, int]]:
    """True sessions whose first event was delivered after another of their events."""
    earliest: dict[tuple[str, int], PlannedEvent] = {}
    first_delivered: dict[tuple[str, int], int] = {}
    for event in planned:
        key = (event.canonical_client, sessions[event.event_id].start_micros)
        if key not in earliest or event.time_micros < earliest[key].time_micros:
            earliest[key] = event
        position = first_position[event.event_id]
        first_delivered[key] = min(first_delivered.get(key, position), position)
    return {
        key
        for key, event in earliest.items()
        if first_position[event.event_id] > first_delivered[key]
    }


def _valid_record(
    event: PlannedEvent,
    session: TrueSession,
    identity: ExpectedIdentity,
    device: _Device,
    sources: dict[str, dict[str, str]],
    *,
    late: bool,
    reachable: bool,
    delivery: _Delivery,
) -> TruthRecord:
    key = session_key(event.canonical_client, session.start_micros)
    properties = event.params.get("x-ga-mp2-user_properties", {})
    return TruthRecord(
        event_id=event.event_id,
        valid=True,
        expected_reason=None,
        person=event.person,
        client_id=event.canonical_client,
        user_id=identity.user_id,
        after_logout=identity.after_logout,
        session_key=key,
        session_start_micros=session.start_micros,
        session_number=session.number,
        time_micros=event.time_micros,
        late=late,
        session_id_reachable=reachable,
        delivered=delivery.count[event.event_id],
        device_category=device.agent.truth.category,
        browser=device.agent.truth.browser,
        operating_system=device.agent.truth.operating_system,
        country=device.location["country"] if device.location else None,
        session_source=dict(sources[key]),
        user_properties={k: v for k, v in properties.items() if not k.startswith("_")},
        consent=device.consent.mp,
        user_data="user_data" in event.params,
        engagement_time_msec=int(event.params.get("engagement_time_msec", 0)),
    )


def _invalid_record(malformed: _Malformed, delivery: _Delivery) -> TruthRecord:
    return TruthRecord(
        event_id=malformed.event_id,
        valid=False,
        expected_reason=malformed.reason,
        person=malformed.person,
        client_id=None,
        user_id=None,
        after_logout=False,
        session_key=None,
        session_start_micros=None,
        session_number=None,
        time_micros=None if malformed.reason == "unparseable_time" else malformed.time_micros,
        late=False,
        session_id_reachable=False,
        delivered=delivery.count[malformed.event_id],
    )


def _stats(
    *,
    config: SimulationConfig,
    planner: _Planner,
    planned: Sequence[PlannedEvent],
    truth: Sequence[TruthRecord],
    browser: dict[str, tuple[int, int]],
    sessions: dict[str, TrueSession],
    delivery: _Delivery,
) -> dict[str, int]:
    """Counts by feature, for the summary a simulation prints."""
    people_on_device: dict[str, set[str]] = defaultdict(set)
    for event in planned:
        people_on_device[event.device].add(event.person)
    valid = [record for record in truth if record.valid]
    stats = {
        "people": config.people,
        "devices": len(planner.devices),
        "devices_prefixed_client_id": sum(d.style == "prefixed" for d in planner.devices),
        "devices_server_managed_client_id": sum(d.style == "server" for d in planner.devices),
        "devices_itp_broken": sum(d.itp_broken for d in planner.devices),
        "devices_shared": sum(len(people) > 1 for people in people_on_device.values()),
        "devices_with_client_hints": sum(d.agent.client_hints is not None for d in planner.devices),
        "devices_without_event_location": sum(d.location is None for d in planner.devices),
        "devices_ads_consent_denied": sum(
            d.consent.mp["ad_user_data"] == "DENIED" for d in planner.devices
        ),
        "clients": len({e.sent_client.removeprefix("GA1.1.") for e in planned}),
        "true_sessions": len({record.session_key for record in valid}),
        "events_valid": len(valid),
        "events_malformed": len(truth) - len(valid),
        "deliveries": len(delivery.payloads),
        "duplicate_deliveries": len(delivery.payloads) - len(truth),
        "delayed_up_to_late_max": delivery.delayed["late"],
        "delayed_up_to_very_late_max": delivery.delayed["very_late"],
        "events_out_of_order": sum(record.late for record in valid),
        "cross_domain_hops": sum(e.landing for e in planned),
        "events_sent_prefixed_client_id": sum(e.sent_client.startswith("GA1.") for e in planned),
        "events_with_own_user_id": sum(e.user_id is not None for e in planned),
        "events_expected_stitched": sum(
            record.user_id is not None
            for record, e in zip(valid, planned, strict=True)
            if e.user_id is None
        ),
        "events_anonymous_after_logout": sum(record.after_logout for record in valid),
        "events_with_user_data": sum(record.user_data for record in valid),
        "events_without_engagement_time": sum(record.engagement_time_msec == 0 for record in valid),
        "events_browser_session_wrong": sum(
            browser[e.event_id]
            != (sessions[e.event_id].start_micros // MICROS, sessions[e.event_id].number)
            for e in planned
        ),
    }
    for name, count in sorted(Counter(e.event_name for e in planned).items()):
        stats[f"event_{name}"] = count
    for reason, count in sorted(Counter(r.expected_reason for r in truth if not r.valid).items()):
        stats[f"malformed_{reason}"] = count
    return stats
