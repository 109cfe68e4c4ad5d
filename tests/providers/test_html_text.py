"""HTML descriptions (Google's editor) -> plain text, with the standard HTML parser."""

from __future__ import annotations

import pytest

from emulators.google_state import editor_html
from server.providers.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("line one<br>line two<br/>three", "line one\nline two\nthree"),
        ("<p>first</p><p>second</p>", "first\nsecond"),
        ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),
        ("Tom &amp; Jerry &lt;3 &#169; &nbsp;x", "Tom & Jerry <3 © x"),
        ("<ul><li>one</li><li>two</li></ul>after", "- one\n- two\nafter"),
        ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two"),
        ('<a href="https://e.test/x">the doc</a>', "the doc (https://e.test/x)"),
        ('<a href="https://e.test/x">https://e.test/x</a>', "https://e.test/x"),
        ('<a href="mailto:a@e.test">a@e.test</a>', "a@e.test"),
        ('<a href="javascript:alert(1)">click</a>', "click"),
        ("<b>bold</b>   and\n  <i>spaced</i>", "bold and spaced"),
        ("x<script>alert(1)</script><style>p{}</style>y", "xy"),
        ("a <b>unclosed", "a unclosed"),
    ],
)
def test_markup_becomes_readable_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_plain_text_is_left_alone() -> None:
    assert html_to_text("Agenda\n  indented & AT&T 3 < 4") == "Agenda\n  indented & AT&T 3 < 4"


@pytest.mark.parametrize(
    "text",
    [
        "Agenda: goals\nBring notes & questions <3\nhttps://example.org/doc?a=1&b=2",
        "one line",
        "",
        "a\n\nb",
    ],
)
def test_text_saved_by_googles_editor_reads_back_the_same(text: str) -> None:
    assert html_to_text(editor_html(text)) == text
