"""A griffe extension for the API reference: the package's docstrings use a few reStructuredText forms (roles such as
``:func:`name```, ``:math:`…```, ``.. math::`` blocks, ``Example::`` literal blocks); mkdocstrings renders docstrings as
Markdown. This rewrites those forms into their Markdown equivalents before rendering (the source is not touched):

* ``:func:`e2llm_lite.rope.inv_freq``` and the other object roles → ``e2llm_lite.rope.inv_freq`` in code (``~`` keeps
  the last component, as in Sphinx);
* ``:math:`x``` → ``$x$``; a ``.. math::`` block → ``$$ … $$`` (rendered by pymdownx.arithmatex, then MathML);
* a paragraph ending in ``::`` → ``:`` (the indented block after it is already a Markdown code block).
"""
from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|attr|meth|obj|exc|const|ref):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)*)",
                         re.M)
_LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.M)


def _role(m: re.Match) -> str:
    target = m.group(1)
    if "`~" in m.group(0):  # Sphinx's ~: show the last component only
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _math_block(m: re.Match) -> str:
    body = textwrap.dedent(m.group("body")).strip()
    tex = " ".join(x for x in (m.group("first").strip(), body) if x)
    tex = re.sub(r"\\tag\{([^}]*)\}", r"\\qquad (\1)", tex)  # equation numbers as text: MathML has no \tag
    return f"{m.group('indent')}$$\n{m.group('indent')}{tex}\n{m.group('indent')}$$\n\n"


def rst_to_markdown(text: str) -> str:
    text = _MATH_BLOCK.sub(_math_block, text + "\n").rstrip("\n")
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(_role, text)
    return _LITERAL.sub(":", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
