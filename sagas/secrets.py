"""Secrets kept out of what people see: URLs are shown with their password masked.

A database or broker URL (``postgresql://sagas:s3cret@db/sagas``, ``amqp://user:pw@mq/``)
is shown on the dashboard, in start-up logs and in error messages; :func:`mask_url` and
:func:`mask_urls` put ``***`` where its password was, so that none of these ever shows one.

SQLAlchemy's ``URL.render_as_string(hide_password=True)`` is not enough on its own: it keeps
a password given as a query parameter (libpq reads ``?password=…``), and its parser ends
the password at the *first* ``@``, so part of a password holding an unencoded ``@`` would
be shown as the host. Here the user information ends at the *last* ``@`` of the authority.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_url", "mask_urls"]

MASK = "***"
"""What a password is shown as."""

_SECRET_PARAMETERS = (
    r"password|passwd|pwd|pass|sslpassword|secret|client_secret|token|access_token|api_?key"
)
_SECRET_QUERY = re.compile(rf"(?i)([?&;](?:{_SECRET_PARAMETERS})=)[^&;#\s]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO = re.compile(r"([^:/@?#]*):.*@", re.DOTALL)  # user ":" password "@" (greedy)
_TOKEN = re.compile(r"[^:/@?#]+@")
# A URL inside text: a scheme, then everything up to white space or a quote/bracket that
# cannot be part of the URL (messages quote URLs as 'url' or "url" or (url)).
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>`()\[\]{}]*""")


def mask_url(url: str) -> str:
    """``url`` with its password (in the user information or a query parameter such as
    ``password=``) replaced by ``***``; anything without a password is returned unchanged.

    >>> mask_url("postgresql://sagas:s3cret@db.example:5432/sagas")
    'postgresql://sagas:***@db.example:5432/sagas'
    >>> mask_url("sqlite:///var/lib/sagas.db")
    'sqlite:///var/lib/sagas.db'
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    head, rest = url[: scheme.end()], url[scheme.end() :]
    userinfo = _USERINFO.match(rest)
    if userinfo is not None:
        # The password runs to the LAST "@": it may hold "@", "/", "?" or "#" unencoded, and
        # showing too little of a URL is better than showing part of a password.
        rest = f"{userinfo.group(1)}:{MASK}@{rest[userinfo.end() :]}"
    elif head.lower().startswith(("nats", "tls")) and _TOKEN.match(rest):
        rest = _TOKEN.sub(f"{MASK}@", rest, count=1)  # nats://TOKEN@host: the user is a token
    return head + _SECRET_QUERY.sub(rf"\g<1>{MASK}", rest)


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it masked (see :func:`mask_url`): for
    error messages and log lines that may quote a URL."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda found: mask_url(found.group()), text)
