"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks``).

Math is rendered at build time into MathML, which browsers draw natively: the site needs no MathJax or KaTeX script
and loads nothing from another host, so it reads the same offline.

* Markdown pages and the API reference: pymdownx.arithmatex (``generic: true``) leaves ``\\(…\\)`` in
  ``<span class="arithmatex">`` and ``\\[…\\]`` in ``<div class="arithmatex">``; each becomes ``<math>``.
* Notebook pages (mkdocs-jupyter): the markdown cells keep ``$…$`` and ``$$…$$`` for MathJax; outside code and
  ``pre`` blocks each becomes ``<math>`` too.

The API reference's navigation file (``api/SUMMARY.md``, read by mkdocs-literate-nav) is not built as a page.
"""
from __future__ import annotations

import html
import re

from latex2mathml.converter import convert
from mkdocs.plugins import event_priority
from mkdocs.structure.files import InclusionLevel

_ARITHMATEX = re.compile(r'<(?P<tag>span|div) class="arithmatex">\s*\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]\s*</(?P=tag)>',
                         re.S)
_MARKDOWN_CELL = re.compile(r'<div class="[^"]*\bjp-RenderedMarkdown\b[^"]*"[^>]*>')
_SKIP = re.compile(r"<(pre|code)\b.*?</\1>", re.S)
_DOLLARS = re.compile(r"(?<![\\$])\$\$(?P<block>.+?)\$\$|(?<![\\$\w])\$(?P<inline>[^$\n]+?)\$(?!\w)", re.S)


def mathml(tex: str, display: bool) -> str:
    return convert(html.unescape(tex).strip(), display="block" if display else "inline")


def _arithmatex(m: re.Match) -> str:
    return mathml(m.group("tex"), display=m.group("open") == "[")


def _dollars(text: str) -> str:
    """``$…$`` / ``$$…$$`` of an HTML fragment as MathML, leaving ``<pre>`` and ``<code>`` elements alone."""
    out, last = [], 0
    for skip in _SKIP.finditer(text):
        out.append(_DOLLARS.sub(lambda m: mathml(m.group("block") or m.group("inline"), bool(m.group("block"))),
                                text[last:skip.start()]))
        out.append(skip.group(0))
        last = skip.end()
    out.append(_DOLLARS.sub(lambda m: mathml(m.group("block") or m.group("inline"), bool(m.group("block"))),
                            text[last:]))
    return "".join(out)


def _markdown_cells(content: str) -> str:
    """Apply :func:`_dollars` to the inside of every rendered markdown cell of a notebook page."""
    out, pos = [], 0
    for start in _MARKDOWN_CELL.finditer(content):
        if start.start() < pos:
            continue
        depth, i = 1, start.end()
        for tag in re.finditer(r"<(/?)div\b", content[i:]):
            depth += -1 if tag.group(1) else 1
            if depth == 0:
                end = i + tag.start()
                break
        else:
            continue
        out += [content[pos:start.end()], _dollars(content[start.end():end])]
        pos = end
    out.append(content[pos:])
    return "".join(out)


def on_page_content(html_text: str, page, config, files) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        html_text = _markdown_cells(html_text)
    return _ARITHMATEX.sub(_arithmatex, html_text)


@event_priority(-200)  # after mkdocs-literate-nav (-100) has read it
def on_files(files, config):
    nav_file = files.get_file_from_path("api/SUMMARY.md")
    if nav_file is not None:
        nav_file.inclusion = InclusionLevel.EXCLUDED
    return files
