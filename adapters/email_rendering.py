"""The readable part of a disclosure email: the permitted fields, labelled from the data dictionary.

Made from the claims of the council-signed JWT the message carries, so the reader sees exactly
what the attachment holds, nothing more. Every value is HTML-escaped in the HTML part. The
agreement id is left out (like the subject line): it could reveal, say, a police request.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agreements.dictionary import lookup

_SUBJECT_LABELS = {"nhs_number": "NHS number", "local_id": "Local id"}
_ONWARD = {
    "prohibited": "not to be shared further",
    "listed": "only with the recipients the agreement names",
    "with_consent": "only with the person's consent",
}


@dataclass(frozen=True, slots=True)
class Rendering:
    """The text and HTML parts of one disclosure."""

    text: str
    html: str


def claims_of(token: bytes) -> dict[str, Any]:
    """The claims of our own compact JWS (already signed by us: nothing to verify here)."""
    parts = token.split(b".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    payload = parts[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    if not isinstance(claims, dict):
        raise ValueError("the signed disclosure's payload is not a JSON object")
    return claims


def labelled_fields(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) for every identifier and field the disclosure carries, in order."""
    rows = [
        (_SUBJECT_LABELS.get(str(name), str(name)), _show(value))
        for name, value in dict(claims.get("subject") or {}).items()
    ]
    rows += list(_walk(claims.get("data") or {}, "", ""))
    return rows


def _walk(value: Any, path: str, position: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key), position)
    elif isinstance(value, list):
        for index, item in enumerate(value, start=1):
            where = f"{position} {index}".strip()
            if isinstance(item, Mapping | list):
                yield from _walk(item, f"{path}[*]", where)
            else:
                yield _label(path, where), _show(item)
    else:
        yield _label(path, position), _show(value)


def _label(path: str, position: str) -> str:
    found = lookup(path)
    label = found.description if found is not None and found.description else path
    return f"{label} ({position})" if position else label


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def render(claims: Mapping[str, Any], *, council: str, attachment: str) -> Rendering:
    """Text and HTML for the member of staff who opens the message."""
    message_id = str(claims.get("jti", ""))
    facts = [
        ("Disclosure id", message_id),
        ("Purpose", str(claims.get("purpose", ""))),
        ("Keep until", str(claims.get("retain_until", ""))),
        ("Onward sharing", _ONWARD.get(str(claims.get("onward_sharing")), "see the agreement")),
    ]
    fields = labelled_fields(claims)
    width = max((len(label) for label, _ in [*facts, *fields]), default=0)
    lines = [
        f"A disclosure from {council}, shared with you under an information sharing agreement.",
        "",
        *(f"{label.ljust(width)}  {value}" for label, value in facts),
        "",
        "Fields shared:",
        *(f"{label.ljust(width)}  {value}" for label, value in fields),
        "",
        f"The attachment {attachment} is the same disclosure signed by {council}; a system can",
        f"verify it with {council}'s published keys (JWKS). Send the signed receipt for",
        f"disclosure {message_id} as your agreement sets out.",
        "",
    ]
    esc = html.escape
    rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    field_rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields)
    page = (
        "<html><body>\n"
        f"<p>A disclosure from {esc(council)}, shared with you under an information sharing "
        "agreement.</p>\n"
        f"<table>\n{rows}\n</table>\n<h3>Fields shared</h3>\n<table>\n{field_rows}\n</table>\n"
        f"<p>The attachment <code>{esc(attachment)}</code> is the same disclosure signed by "
        f"{esc(council)}; a system can verify it with {esc(council)}'s published keys (JWKS). "
        f"Send the signed receipt for disclosure <code>{esc(message_id)}</code> as your "
        "agreement sets out.</p>\n</body></html>\n"
    )
    return Rendering("\n".join(lines), page)
