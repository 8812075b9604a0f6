"""Document blocks of the validation report and their markdown / HTML renderers.

:mod:`validation.report` builds one list of blocks (headings, paragraphs, bullets,
tables, images, code, a table of contents); :func:`render_markdown` and
:func:`render_html` render the same list, so both documents always say the same
thing. Headings get anchors (GitHub's slug rule) so that the table of contents links.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


def slug(text: str) -> str:
    """GitHub-style anchor of a heading: lower case, punctuation dropped, spaces to '-'.

    Examples
    --------
    >>> slug("Group: ab")
    'group-ab'
    """
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True, slots=True)
class Heading:
    """A section heading."""

    level: int
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of runs ``(style, text)``, style in {"", "b", "code"}."""

    runs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Bullets:
    """A bullet list; each item is a tuple of runs as in :class:`Paragraph`."""

    items: tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of plain-text cells; ``row_classes`` ("pass", "fail" or "") colour rows."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Image:
    """A PNG: ``src`` is its path relative to the report (markdown); HTML embeds it."""

    src: str
    png: bytes
    alt: str


@dataclass(frozen=True, slots=True)
class Code:
    """A preformatted block."""

    text: str


@dataclass(frozen=True, slots=True)
class Toc:
    """A table of contents: the headings ``(level, text)`` it links to."""

    entries: tuple[tuple[int, str], ...]


Block = Heading | Paragraph | Bullets | Table | Image | Code | Toc


def _p(*runs: tuple[str, str] | str) -> Paragraph:
    return Paragraph(tuple(("", r) if isinstance(r, str) else r for r in runs))


# --------------------------------------------------------------------------- renderers


def _md_escape(text: str) -> str:
    text = text.replace("\\", "\\\\")
    for ch in "*_`<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_runs(runs: Sequence[tuple[str, str]]) -> str:
    parts = []
    for style, text in runs:
        if style == "b":
            parts.append(f"**{_md_escape(text).strip()}**" + (" " if text.endswith(" ") else ""))
        elif style == "code":
            parts.append("`" + text.replace("`", "'") + "`")
        else:
            parts.append(_md_escape(text))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return _md_escape(text).replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """Render blocks as GitHub-flavoured markdown (images as relative links)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(_md_runs(block.runs))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_runs(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                "|" + "|".join("---" for _ in block.header) + "|",
            ]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            out.append(f"![{_md_escape(block.alt)}]({block.src})")
        elif isinstance(block, Code):
            out.append("```\n" + block.text.replace("```", "'''") + "\n```")
        elif isinstance(block, Toc):
            out.append(
                "\n".join(
                    f"{'  ' * (lvl - 2)}- [{_md_escape(t)}](#{slug(t)})" for lvl, t in block.entries
                )
            )
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
tr.pass td { background: #f1faf1; }
tr.fail td { background: #fde8e8; }
tr.breaks td { background: #fff4d6; }
code, pre { background: #f6f6f6; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0;
      border: 1px solid #eee; }
h3 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
"""


def _html_runs(runs: Sequence[tuple[str, str]]) -> str:
    parts = []
    for style, text in runs:
        esc = html.escape(text)
        if style == "b":
            parts.append(f"<strong>{esc}</strong>")
        elif style == "code":
            parts.append(f"<code>{esc}</code>")
        else:
            parts.append(esc)
    return "".join(parts)


def render_html(blocks: Sequence[Block], title: str = "Validation report") -> str:
    """Render blocks as one self-contained HTML page (PNGs embedded as base64)."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(
                f'<h{block.level} id="{slug(block.text)}">{html.escape(block.text)}'
                f"</h{block.level}>"
            )
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_runs(block.runs)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_runs(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = []
            for i, row in enumerate(block.rows):
                cls = block.row_classes[i] if i < len(block.row_classes) else ""
                attr = f' class="{cls}"' if cls else ""
                cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
                rows.append(f"<tr{attr}>{cells}</tr>")
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(
                f'<img alt="{html.escape(block.alt, quote=True)}" '
                f'src="data:image/png;base64,{data}">'
            )
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif isinstance(block, Toc):
            items = "".join(
                f'<li style="margin-left:{1.2 * (lvl - 2):.1f}em">'
                f'<a href="#{slug(t)}">{html.escape(t)}</a></li>'
                for lvl, t in block.entries
            )
            body.append(f"<ul>{items}</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
