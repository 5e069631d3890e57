"""Wikitext -> clean prose with mwparserfromhell: drop templates, tables, refs, files, categories; keep link text.

mwparserfromhell's `strip_code` keeps table cells and some template-like debris; prose for a language model wants
neither, so nodes are rendered one by one here and whatever markup still survives (unbalanced or malformed input
the parser leaves as text) is removed by a final pass.
"""

from __future__ import annotations

import html
import re

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Tag,
    Template,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

# Tags whose content is not prose (or is a table); dropped with their content.
DROP_TAGS = frozenset(
    {"ref", "references", "table", "gallery", "math", "chem", "ce", "score", "timeline", "graph", "imagemap",
     "syntaxhighlight", "source", "pre", "code", "templatedata", "mapframe", "maplink", "hiero", "inputbox",
     "categorytree", "noinclude", "includeonly", "onlyinclude", "nowiki", "sup", "sub", "br", "hr", "img", "abbr"}
)
# Link namespaces that are not prose: media, categories, and links to other wikis or languages.
DROP_LINK_PREFIXES = ("file:", "image:", "media:", "category:", "wikipedia:", "wp:", "template:", "help:", "portal:",
                      "special:", "user:", "talk:", "wikt:", "wiktionary:", "s:", "commons:", "meta:", ":category:")
_INTERWIKI = re.compile(r"^:?[a-z]{2,3}(-[a-z]+)?:")

_LEFTOVER = [
    re.compile(r"\{\{.*?\}\}", re.S),  # templates the parser left as text
    re.compile(r"\{\|.*?\|\}", re.S),  # tables likewise
    re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.S | re.I),
    re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>"),  # stray html tags
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"'{2,}"),  # bold / italic quotes
]
_DEBRIS = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<ref", re.I)
_TABLE_LINE = re.compile(r"^\s*(\{\||\|\}|\|-|\|\+|!)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_EMPTY_PARENS = re.compile(r"\(\s*[,;]?\s*\)")
_SPACE_PUNCT = re.compile(r" +([,.;:)])")


def wikitext_to_text(wikitext: str) -> str:
    """Clean prose from one page's wikitext: paragraphs separated by blank lines, headings on their own lines."""
    code = mwparserfromhell.parse(wikitext, skip_style_tags=True)
    text = _render(code)
    for pattern in _LEFTOVER:
        text = pattern.sub(" ", text)
    lines = []
    for line in text.split("\n"):
        if _TABLE_LINE.match(line):
            continue
        line = _DEBRIS.sub(" ", line)
        line = _SPACE_PUNCT.sub(r"\1", _EMPTY_PARENS.sub("", _SPACES.sub(" ", line))).strip()
        line = line.lstrip("*#:;").strip() if line[:1] in "*#:;" else line
        lines.append(line)
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _render(code: Wikicode) -> str:
    return "".join(_node(n) for n in code.nodes)


def _template(node: Template) -> str:
    """Templates are dropped, except the few that wrap running prose (foreign words, no-wrap spans)."""
    name = str(node.name).strip().lower().replace("_", " ")
    positional = [p for p in node.params if not p.showkey]
    if name in ("lang", "transl") and positional:
        return _render(positional[-1].value)
    if (name.startswith("lang-") or name in ("nowrap", "nobr", "small", "smaller")) and positional:
        return _render(positional[0].value)
    return ""


def _node(node: object) -> str:
    if isinstance(node, Text):
        return str(node.value)
    if isinstance(node, Template):
        return _template(node)
    if isinstance(node, (Comment, Argument)):
        return ""
    if isinstance(node, HTMLEntity):
        return html.unescape(str(node))
    if isinstance(node, Heading):
        return "\n" + _render(node.title).strip() + "\n"
    if isinstance(node, Wikilink):
        title = str(node.title).strip()
        low = title.lower()
        if low.startswith(DROP_LINK_PREFIXES) or _INTERWIKI.match(low):
            return ""
        return _render(node.text) if node.text is not None else title.split("#")[0] if not title.startswith("#") \
            else title[1:]
    if isinstance(node, ExternalLink):
        return _render(node.title) if node.title is not None else ""
    if isinstance(node, Tag):
        tag = str(node.tag).strip().lower()
        if tag in DROP_TAGS or node.wiki_markup in ("{|",):
            return ""
        if tag == "li" or tag == "dd" or tag == "dt":
            return ""  # the list marker itself; the item's text follows as sibling nodes
        inner = _render(node.contents) if node.contents is not None else ""
        return inner if tag not in ("p", "div", "blockquote", "poem", "center") else "\n" + inner + "\n"
    return ""
