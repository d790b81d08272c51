"""``kctest.page_error`` reads a page's refusal the way BeautifulSoup's
``select(".alert.error")`` and ``get_text(strip=True)`` read it, without building the tree
(``kctest.alert_texts``): the form tests compare the API's refusal with the page's, so the
reader must neither miss an alert nor add text from outside one."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from kctest import alert_texts, page_error

PAGES = [
    '<div class="alert error">a <b>b</b>\n c &amp; d<br>e<input name=x></div>'
    '<p class="error alert x">two</p>',
    '<div class="alert">info</div><div class="error">field</div>',
    '<div class="alert error"><div class="alert error">inner</div>outer</div>',
    '<p class="alert error">never closed <span>x',
    '<div class=" alert  error ">spaced</div><!-- a comment --></span><p>after</p>',
    '<main><section class="alert error" role="alert">Dose &gt; 84&#160;mg</section></main>',
    "",
]


def soup_texts(html: str) -> list[str]:
    return [e.get_text(strip=True) for e in BeautifulSoup(html, "html.parser").select(
        ".alert.error")]


@pytest.mark.parametrize("html", PAGES)
def test_the_alert_reader_finds_what_beautifulsoup_finds(html):
    assert alert_texts(html) == soup_texts(html)


def test_page_error_wants_exactly_one_refusal_and_returns_its_text():
    assert page_error('<p class="alert error">A</p><div class="alert error">A</div>') == "A"
    with pytest.raises(AssertionError, match="expected one refusal"):
        page_error('<div class="alert">not a refusal</div>')
    with pytest.raises(AssertionError, match="expected one refusal"):
        page_error('<p class="alert error">A</p><p class="alert error">B</p>')
