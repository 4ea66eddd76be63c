"""A tiny HTML reader for pure rendering tests: every element with its attributes and its text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


@dataclass
class Element:
    """One element: tag, attributes, and the text of everything inside it."""

    tag: str
    attrs: dict[str, str | None]
    parent: Element | None = None
    parts: list[str] = field(default_factory=list)

    def inside(self, ancestor: Element) -> bool:
        """True when ``ancestor`` contains this element."""
        node = self.parent
        while node is not None:
            if node is ancestor:
                return True
            node = node.parent
        return False

    @property
    def text(self) -> str:
        """Text content with runs of whitespace collapsed."""
        return " ".join("".join(self.parts).split())


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.open[-1] if self.open else None)
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.parts.append(data)


def parse(html: str) -> list[Element]:
    """Every element of the document, in document order."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.elements


def find(elements: list[Element], tag: str, *, within: Element | None = None, **attrs: str) -> list[Element]:
    """Elements with this tag and these attribute values (underscores in names stand for dashes)."""
    wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
    return [
        e
        for e in elements
        if e.tag == tag and all(e.attrs.get(k) == v for k, v in wanted.items()) and (within is None or e.inside(within))
    ]


def field_text(elements: list[Element], row: Element, name: str) -> str:
    """The text of the one element marked ``data-field=name`` inside ``row``."""
    [cell] = [e for e in elements if e.attrs.get("data-field") == name and e.inside(row)]
    return cell.text
