"""Which requests devhost answers at all, and which may sign in or use the admin API.

Owns two checks against the other web pages a developer has open while devhost runs:
- DNS rebinding: the `Host` header must name loopback (127.0.0.1, localhost, ::1, with any
  port) or the host of the `PUBLIC_BASE_URL` setting; anything else is refused before dispatch,
  as Azure's front end answers only the app's own host names;
- cross-site requests: a sign-in post (login CSRF) or an `/admin/` request (a page's `fetch`)
  whose `Sec-Fetch-Site` is anything but `same-origin` or `none`, or whose `Origin` is not
  devhost's own origin, is refused (`Origin: null` passes only with `Sec-Fetch-Site: same-origin`).
https://fetch.spec.whatwg.org/#origin-header  https://www.w3.org/TR/fetch-metadata/#sec-fetch-site-header
Requests that carry neither header (scripts, tests, m365sim's webhook posts) pass as before.
It never reads cookies or bodies, and never decides what a signed-in caller may do.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_PORT = re.compile(r":\d{1,5}")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def host_name(host_header: str) -> str | None:
    """The name in a `Host` header, lower-case and without port or IPv6 brackets; None when malformed."""
    value = host_header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not _PORT.fullmatch(value[end + 1:])):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not _PORT.fullmatch(colon + port):
        return None
    return name or None


def origin_of(scheme: str, netloc: str) -> str:
    """`scheme://host[:port]` as a browser writes it in `Origin` (no default port, lower-case)."""
    scheme, netloc = scheme.lower(), netloc.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and netloc.endswith(f":{default}"):
        netloc = netloc[: -len(default) - 1]
    return f"{scheme}://{netloc}"


class RequestGuard:
    def __init__(self, public_base_url: str | None) -> None:
        self.allowed_names = set(LOOPBACK_NAMES)
        self.public_origin: str | None = None
        if public_base_url:
            parts = urlsplit(public_base_url)
            if parts.hostname and parts.scheme:
                self.allowed_names.add(parts.hostname.lower())
                self.public_origin = origin_of(parts.scheme, parts.netloc.rpartition("@")[2])

    def host_problem(self, host_header: str | None) -> str | None:
        """Why devhost will not answer a request with this `Host` header, or None."""
        if host_header is None:
            return None  # HTTP/1.0 without Host: no browser sends that, so no rebinding either
        if host_name(host_header) in self.allowed_names:
            return None
        allowed = ", ".join(sorted(self.allowed_names - LOOPBACK_NAMES)) or "no other host"
        return (f"devhost does not answer for Host {host_header!r}: it answers for 127.0.0.1, localhost and [::1] "
                f"(any port), and for the host of PUBLIC_BASE_URL ({allowed}).")

    def cross_site_problem(self, *, origin: str | None, fetch_site: str | None, scheme: str,
                           host_header: str | None) -> str | None:
        """Why a sign-in or admin request looks like it comes from another site's page, or None."""
        site = fetch_site.strip().lower() if fetch_site is not None else None
        if site is not None and site not in ("same-origin", "none"):
            return f"refused: the browser says this request comes from another site (Sec-Fetch-Site: {fetch_site})"
        if origin is None:
            return None
        if origin.strip().lower() == "null" and site == "same-origin":
            # Our own pages send `Referrer-Policy: no-referrer`, under which a browser writes a
            # same-origin form post's Origin as "null"; Sec-Fetch-Site still says where it is from.
            return None
        own = {origin_of(scheme, host_header)} if host_header else set()
        if self.public_origin:
            own.add(self.public_origin)
        if origin.strip().lower().rstrip("/") in own:
            return None
        return f"refused: this request comes from the page of another origin (Origin: {origin})"
