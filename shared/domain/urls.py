"""Query parameters of the page URLs events carry (``page_location``).

Cross-domain evidence (our link token, GA4's ``_gl``) travels in a URL's query or, when a
page moved it there, its fragment; both are read the same way, and a malformed URL reads
as carrying nothing rather than failing the event.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

__all__ = [
    "remove_query_parameters",
    "url_parameter",
]


def url_parameter(url: str | None, name: str) -> str | None:
    """The first non-blank value of ``name`` in ``url``'s query, else in its fragment."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for part in (parts.query, parts.fragment):
        for key, value in parse_qsl(part, keep_blank_values=True):
            if key == name and value.strip():
                return value
    return None


def remove_query_parameters(url: str, names: Collection[str]) -> str:
    """``url`` without the named query parameters (a spent token, ``_gl``), so reports
    in GA4 do not split one page into many; every other byte of the URL is kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    pieces = parts.query.split("&")
    kept = [piece for piece in pieces if unquote_plus(piece.split("=", 1)[0]) not in names]
    if len(kept) == len(pieces):
        return url
    return urlunsplit(parts._replace(query="&".join(kept)))
