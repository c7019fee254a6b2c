"""The readable part of an email: the permitted fields, labelled from the data dictionary.

Made from the claims of the council-signed JWT the message carries, so the reader sees exactly
what the attachment holds, nothing more: a disclosure's fields, or an Article 19 notice's kind,
original disclosures, affected fields and corrected values. Every value is HTML-escaped in the
HTML part. The agreement id is left out (like the subject line): it could reveal, say, a police
request.
"""

from __future__ import annotations

import base64
import html
import json
import textwrap
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


_NOTICE_ACTIONS = {
    "rectification": (
        "The data listed below was inaccurate and has been corrected. Please correct the records "
        "you hold from these disclosures; where a corrected value is given, it replaces the one "
        "you received."
    ),
    "erasure": (
        "The data listed below has been erased. Please erase it from the records you hold from "
        "these disclosures, unless the law requires you to keep it."
    ),
    "restriction": (
        "Processing of the data listed below is restricted. Please keep it but not otherwise use "
        "it until the council tells you the restriction has ended."
    ),
}


def is_notice(claims: Mapping[str, Any]) -> bool:
    """The claims are an Article 19 notice's (signed as `gatehouse-notice+jwt`), which carry a
    `notice` object where a disclosure carries `data`."""
    return isinstance(claims.get("notice"), Mapping)


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


def _show_value(value: Any) -> str:
    return "; ".join(_show(v) for v in value) if isinstance(value, list) else _show(value)


def _table_lines(rows: list[tuple[str, str]], width: int) -> list[str]:
    return [f"{label.ljust(width)}  {value}".rstrip() for label, value in rows]


def _html_table(rows: list[tuple[str, str]]) -> str:
    esc = html.escape
    body = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>\n{body}\n</table>"


def render_notice(claims: Mapping[str, Any], *, council: str, attachment: str) -> Rendering:
    """Text and HTML of an Article 19 notice: what happened, to which disclosures and fields,
    and the corrected values (only ever those of fields the partner received)."""
    notice = dict(claims.get("notice") or {})
    notice_id = str(claims.get("jti", ""))
    kind = str(notice.get("kind", ""))
    corrections = dict(notice.get("corrections") or {})
    facts = [
        ("Notice id", notice_id),
        ("Kind of notice", kind.capitalize()),
        ("Reason", str(notice.get("reason", ""))),
        ("Disclosures", ", ".join(str(d) for d in notice.get("disclosures") or ())),
    ]
    fields = []
    for path in notice.get("fields") or ():
        label = _label(str(path), "")
        shown = label if label == path else f"{label} ({path})"
        if path in corrections:
            fields.append((shown, f"corrected: {_show_value(corrections[path])}"))
        else:
            fields.append((shown, "no corrected value given" if kind == "rectification" else ""))
    width = max((len(label) for label, _ in [*facts, *fields]), default=0)
    action = _NOTICE_ACTIONS.get(kind, "See the agreement.")
    closing = (
        f"The attachment {attachment} is the same notice signed by {council}; a system can "
        f"verify it with {council}'s published keys (JWKS). Send the signed receipt for "
        f"notice {notice_id} as your agreement sets out."
    )
    intro = f"A notice from {council} under UK GDPR Article 19 about data it shared with you."
    lines = [
        intro,
        "",
        *_table_lines(facts, width),
        "",
        textwrap.fill(action, 96),
        "",
        "Fields concerned:",
        *_table_lines(fields, width),
        "",
        textwrap.fill(closing, 96),
        "",
    ]
    esc = html.escape
    page = (
        f"<html><body>\n<p>{esc(intro)}</p>\n{_html_table(facts)}\n<p>{esc(action)}</p>\n"
        f"<h3>Fields concerned</h3>\n{_html_table(fields)}\n<p>{esc(closing)}</p>\n"
        "</body></html>\n"
    )
    return Rendering("\n".join(lines), page)


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
