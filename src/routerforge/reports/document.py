"""The run report's document model: one list of blocks (headings, paragraphs, tables, figures, code) rendered
twice, to a self-contained HTML page (inline CSS, plots as ``data:`` URIs, no links outside itself) and to
Markdown (plots as PNG files beside it), so that both say the same thing.

Cells are formatted by :func:`routerforge.reports.format.number`; a :class:`NotRun` (from :func:`not_run`) marks a
missing piece of the run.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any

from .format import markdown_cell, number


class NotRun(str):
    """A cell or paragraph for a piece of the run that is missing (stage not run, file absent)."""


def not_run(reason: str | None = None) -> NotRun:
    """A cell or paragraph that says what is missing from the run, and why."""
    return NotRun("not run" + (f" ({reason})" if reason else ""))


@dataclass
class Doc:
    """Blocks rendered twice: to self-contained HTML and to Markdown (same headings, tables and text)."""

    blocks: list[tuple] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        """A section heading (``level`` 2-4)."""
        self.blocks.append(("h", level, text, anchor))

    def para(self, text: str) -> None:
        """A paragraph of text."""
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[Any]], css: str = "") -> None:
        """A table; numbers are formatted by ``reports.format.number``."""
        self.blocks.append(("table", header, rows, css))

    def image(self, name: str, png: bytes | None, caption: str, missing: str | None = None) -> None:
        """A figure; without ``png`` a "not run" line saying why (``missing``)."""
        if png is None:
            self.blocks.append(("p", not_run(missing)))
            return
        name = slug(name) + ".png"
        self.images[name] = png
        self.blocks.append(("img", name, caption))

    def pre(self, text: str, lang: str = "") -> None:
        """Preformatted text (code, JSON)."""
        self.blocks.append(("pre", text, lang))

    def raw_html(self, markup: str, markdown: str) -> None:
        """A block rendered as given: HTML in the page, Markdown in the .md file."""
        self.blocks.append(("raw", markup, markdown))

    def grid(self, start: bool) -> None:
        """Lay the blocks between ``grid(True)`` and ``grid(False)`` side by side in HTML."""
        self.blocks.append(("raw", '<div class="grid">' if start else "</div>", None))


def slug(text: str) -> str:
    """An anchor id from a heading."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2330;margin:0;
background:#f6f7f9}
main{max-width:1220px;margin:0 auto;padding:18px 28px 60px}
header{background:#1f2a44;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px}
header .meta{opacity:.85;margin-top:4px;font-size:13px}
h2{font-size:19px;border-bottom:2px solid #d8dce4;padding-bottom:3px;margin-top:30px}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:16px 0 6px;color:#37415a}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:13px}
th,td{border:1px solid #d8dce4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}
.na{color:#8a6d00;font-style:italic}
nav{font-size:13px;margin:10px 0 0}
nav a{margin-right:12px;color:#2458b3;text-decoration:none}
img{max-width:100%;border:1px solid #e1e4ea;background:#fff;margin:4px 0}
figure{margin:6px 0 14px}
figcaption{font-size:12px;color:#5a6275}
pre{background:#fff;border:1px solid #d8dce4;padding:10px;overflow-x:auto;font-size:12px}
p{margin:6px 0 10px}
.grid{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}
figure img{max-width:min(100%,1000px)}
.grid figure img{max-height:400px}
"""


def _is_number_cell(text: str) -> bool:
    return bool(re.fullmatch(r"-?[\d.,]+( ?(ms|MB|s))?( \[[-\d., ]+\])?", text))


def render_html(doc: Doc, title: str, subtitle: str) -> str:
    """The document as one self-contained HTML page (CSS inline, plots as data: URIs)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{html.escape(title)}</h1><div class="meta">{html.escape(subtitle)}</div></header><main>',
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            ident = f' id="{html.escape(anchor)}"' if anchor else ""
            out.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        elif kind == "p":
            text = block[1]
            css = ' class="na"' if isinstance(text, NotRun) else ""
            out.append(f"<p{css}>{_inline_html(text)}</p>")
        elif kind == "table":
            _, header, rows, css = block
            out.append(
                f'<table class="{css}"><thead><tr>'
                + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                + "</tr></thead><tbody>"
            )
            for row in rows:
                cells = []
                for cell in row:
                    text = number(cell)
                    cls = "na" if isinstance(cell, NotRun) else ("num" if _is_number_cell(text) else "")
                    cells.append(
                        f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"
                    )
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "img":
            _, name, caption = block
            data = base64.b64encode(doc.images[name]).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        elif kind == "pre":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "raw":
            out.append(block[1])
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then the two Markdown inline forms the report uses: **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_markdown(doc: Doc, title: str, subtitle: str, image_dir: str = "img") -> str:
    """The document as Markdown, plots written as PNG files under ``image_dir``."""
    out = [f"# {title}", "", subtitle, ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            out += [f"*{block[1]}*" if isinstance(block[1], NotRun) else block[1], ""]
        elif kind == "table":
            _, header, rows, _ = block
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({image_dir}/{block[1]})", ""]
        elif kind == "pre":
            out += [f"```{block[2]}", block[1].rstrip(), "```", ""]
        elif kind == "raw" and block[2] is not None:
            out += [block[2], ""]
    return "\n".join(out)
