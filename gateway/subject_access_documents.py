"""The subject access report as a document: HTML, or PDF drawn by ReportLab.

Both show the same plain-English content; neither ever holds a record value, because the
report has none.
"""

from __future__ import annotations

import io
from html import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from gateway.application.subject_access import SharedWith, SubjectAccessReport

TITLE = "Who the council has shared your information with"


def _facts(item: SharedWith) -> list[tuple[str, str]]:
    facts = [
        ("Date", item.date),
        ("Shared with", item.recipient),
        ("Why", item.purpose),
        ("Lawful basis", item.lawful_basis),
        ("Kinds of information", ", ".join(item.information) or "none"),
        ("What happened", item.outcome),
        ("Where it came from", item.source),
        ("Agreement", item.agreement),
    ]
    if item.shared:
        facts.insert(6, ("How long they keep it", f"{item.kept_for} (until {item.kept_until})"))
        if item.onward_sharing:
            facts.insert(7, ("Passing it on", item.onward_sharing))
    return facts


def to_html(report: SubjectAccessReport) -> str:
    """A self-contained HTML page."""
    parts = [
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(TITLE)}</title></head><body>",
        f"<h1>{escape(TITLE)}</h1>",
        f"<p>{escape(report.note)}</p>",
        f"<p>About {escape(report.about)}. Prepared {escape(report.generated_at)}.</p>",
    ]
    if not report.shared:
        parts.append("<p>The gateway has no record of sharing information about you.</p>")
    for item in report.shared:
        parts.append(f"<h2>{escape(item.date)}: {escape(item.recipient)}</h2><dl>")
        parts += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in _facts(item)]
        parts.append("</dl>")
    parts.append("<h2>Your rights</h2><ul>")
    parts += [f"<li>{escape(right)}</li>" for right in report.rights]
    parts += ["</ul>", "<h2>How to complain</h2>", f"<p>{escape(report.complaint)}</p>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def to_pdf(report: SubjectAccessReport) -> bytes:
    """An A4 PDF of the same content."""
    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading2"]

    def para(text: str, style: object = body) -> Paragraph:
        return Paragraph(escape(text), style)  # type: ignore[arg-type]

    story: list[object] = [
        para(TITLE, styles["Title"]),
        para(report.note),
        para(f"About {report.about}. Prepared {report.generated_at}."),
    ]
    if not report.shared:
        story.append(para("The gateway has no record of sharing information about you."))
    for item in report.shared:
        story += [Spacer(1, 4 * mm), para(f"{item.date}: {item.recipient}", heading)]
        story += [Paragraph(f"<b>{escape(k)}:</b> {escape(v)}", body) for k, v in _facts(item)]
    story += [Spacer(1, 4 * mm), para("Your rights", heading)]
    story += [para(f"- {right}") for right in report.rights]
    story += [para("How to complain", heading), para(report.complaint)]
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, title=TITLE, author="Gatehouse", leftMargin=20 * mm, rightMargin=20 * mm
    )
    document.build(story)  # type: ignore[arg-type]
    return out.getvalue()
