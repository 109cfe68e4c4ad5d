"""HTML event descriptions -> the plain text Tandem keeps.

Google's events resource says the ``description`` "Can contain HTML", and Google
Calendar's own editor stores what the owner types as markup (``<br>``, ``<b>``,
``<a href>``, ``<ul><li>``, entities). Tandem holds descriptions as plain text, so when
a description comes back from a calendar it is converted with the standard library's
HTML parser, the way a browser would lay it out as text:

- line breaks for ``<br>`` and around block elements (``<p>``, ``<div>``, lists...);
  list items become ``- item`` (``1. item`` in ordered lists);
- entities and character references decoded (``&amp;`` -> ``&``, ``&nbsp;`` -> space);
  spaces are collapsed after that, so the editor's ``&nbsp;`` padding reads as one space;
- links kept readable: ``label (https://...)``, or just the address when the label is
  the address; ``<script>``/``<style>`` contents dropped;
- runs of white space inside text collapse to one space, as HTML renders them.

Text without any tag or entity is returned as it is (descriptions Tandem wrote itself,
or a calendar that stores plain text), so its line breaks survive.
"""

from __future__ import annotations

import re
from html.entities import name2codepoint
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
        "section", "table", "tr", "ul",
    }
)  # fmt: skip
_DROPPED = frozenset({"script", "style", "head", "title"})
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


class _Probe(HTMLParser):
    """Finds out whether a text uses any markup at all."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.markup = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.markup = True

    def handle_endtag(self, tag: str) -> None:
        self.markup = True

    def handle_entityref(self, name: str) -> None:
        self.markup = self.markup or name in name2codepoint

    def handle_charref(self, name: str) -> None:
        self.markup = True


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.dropping = 0
        self.lists: list[list[int]] = []  # per open list: [ordered?, next number]
        self.links: list[tuple[str | None, int]] = []  # href, position of its label

    def _newline(self) -> None:
        text = "".join(self.out)
        if text and not text.endswith("\n"):
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self.dropping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("ul", "ol"):
            self._newline()
            self.lists.append([1 if tag == "ol" else 0, 1])
        elif tag == "li":
            self._newline()
            if self.lists and self.lists[-1][0]:
                self.out.append(f"{self.lists[-1][1]}. ")
                self.lists[-1][1] += 1
            else:
                self.out.append("- ")
        elif tag in _BLOCKS:
            self._newline()
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropping = max(0, self.dropping - 1)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline()
        elif tag in _BLOCKS:
            self._newline()
        elif tag == "a" and self.links:
            href, at = self.links.pop()
            label = "".join(self.out[at:]).strip()
            target = (href or "").strip()
            if target.lower().startswith(_LINK_SCHEMES):
                shown = target[7:] if target.lower().startswith("mailto:") else target
                if not label:
                    self.out.append(shown)
                elif label not in (shown, target):
                    self.out.append(f" ({shown})")

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(_SPACES.sub(" ", data))


def html_to_text(value: str) -> str:
    """Plain text of a description that may be HTML (see the module docstring)."""
    probe = _Probe()
    probe.feed(value)
    probe.close()
    if not probe.markup:
        return value
    parser = _Text()
    parser.feed(value)
    parser.close()
    lines = [
        " ".join(line.replace("\xa0", " ").split()) for line in "".join(parser.out).split("\n")
    ]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
