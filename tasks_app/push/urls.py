"""Which webhook URLs PodBoard accepts, when a pod's URL is set and again before each send.

- http or https, with a host; no user name or password in it;
- never PodBoard itself (its public origin, or its own port on a name of this machine): a
  webhook that calls back into the board would only make loops;
- loopback and private-network receivers are allowed by default (agents often run beside the
  board); ``PODBOARD_WEBHOOK_ALLOW_PRIVATE=false`` refuses every address that is not public,
  checked on the addresses the host name resolves to at send time too.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def allow_private():
    return getattr(settings, "PODBOARD_WEBHOOK_ALLOW_PRIVATE", True)


def _split(url):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{url!r} is not a URL: {exc}.") from None
    return parts, port


def _is_loopback_name(host):
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _own_hosts():
    """Host names (lower case) that name PodBoard: its public URL's and ALLOWED_HOSTS'."""
    public = urlsplit(settings.PODBOARD_PUBLIC_URL)
    hosts = {(public.hostname or "").lower()}
    for entry in settings.ALLOWED_HOSTS:
        if entry and entry != "*" and not entry.startswith("."):
            hosts.add(entry.strip("[]").lower())
    hosts.discard("")
    return hosts


def points_at_podboard(url):
    """Return True when ``url`` is PodBoard's own origin (same host and port)."""
    parts, port = _split(url)
    host = (parts.hostname or "").lower()
    port = port or DEFAULT_PORTS.get(parts.scheme, 0)
    public = urlsplit(settings.PODBOARD_PUBLIC_URL)
    public_host = (public.hostname or "").lower()
    public_port = public.port or DEFAULT_PORTS.get(public.scheme, 0)
    if port != public_port:
        return False
    if host == public_host or host in _own_hosts():
        return True
    # The server listens on this machine's port: any loopback name for it is PodBoard too.
    return _is_loopback_name(host) and _is_loopback_name(public_host)


def _not_public(address):
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global


def check_url(url, *, resolve=False):
    """Raise ``ValidationError`` with a clear message when ``url`` may not receive webhooks.

    ``resolve`` also looks the host up (send time) so a public name that resolves to a private
    address is refused when private receivers are not allowed.
    """
    parts, _port = _split(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationError(
            f"A webhook URL must start with http:// or https:// (got {parts.scheme or 'none'!r})."
        )
    if not parts.hostname:
        raise ValidationError("A webhook URL needs a host name.")
    if parts.username or parts.password:
        raise ValidationError("A webhook URL may not carry a user name or password.")
    if points_at_podboard(url):
        raise ValidationError(
            f"{url} points at PodBoard itself ({settings.PODBOARD_PUBLIC_URL}); give the address "
            "of the pod's own receiver."
        )
    if allow_private():
        return
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        if _is_loopback_name(host.lower()):
            addresses = [ipaddress.ip_address("127.0.0.1")]
        elif not resolve:
            return
        else:
            try:
                infos = socket.getaddrinfo(host, parts.port or DEFAULT_PORTS[parts.scheme])
            except OSError as exc:
                raise ValidationError(f"Cannot resolve {host}: {exc}.") from None
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    private = [str(a) for a in addresses if _not_public(str(a))]
    if private:
        raise ValidationError(
            f"{host} is a loopback or private-network address ({', '.join(private)}), and "
            "PODBOARD_WEBHOOK_ALLOW_PRIVATE is false."
        )
