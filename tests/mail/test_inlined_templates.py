"""Jinja2 templates whose CSS is inlined once, before they are compiled (mail/rendering.py)."""

import html

import pytest
from django.utils.html import escape as django_escape
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape as jinja_escape

from mail.rendering import TemplateInliningError, inline_template_css, jinja_environment

STYLE = "<style>.a { color: red; } td p { margin: 0; }</style>"


def page(body: str) -> str:
    return f"<!doctype html><html><head>{STYLE}</head><body>{body}</body></html>"


def test_the_styles_are_written_into_the_elements_and_the_style_element_is_kept():
    inlined = inline_template_css(page('<table><tr><td><p class="a">{{ x }}</p></td></tr></table>'))

    assert '<p class="a" style="margin: 0;color: red;">{{ x }}</p>' in inlined
    assert STYLE in inlined


def test_tags_between_table_rows_stay_where_they_were_written():
    source = page("<table><tr><td>a</td></tr>{% if more %}<tr><td>b</td></tr>{% endif %}</table>")

    inlined = inline_template_css(source)

    assert "</tr>{% if more %}<tr><td>b</td></tr>{% endif %}</tbody></table>" in inlined


def test_a_loop_body_is_styled_once_and_rendered_many_times():
    template = jinja_environment().from_string(
        inline_template_css(
            page('<table><tr><td>{% for x in xs %}<p class="a">{{ x }}</p>{% endfor %}</td></tr></table>')
        )
    )

    assert template.render(xs=["1", "2"]).count('style="margin: 0;color: red;"') == 2


def test_comments_go_before_the_inliner_reads_the_page():
    inlined = inline_template_css("{# a rule\nand another #}" + page("<p>{# why #}x</p>"))

    assert inlined.startswith("<!DOCTYPE html>") and "rule" not in inlined and "<p>x</p>" in inlined


def test_expressions_stay_where_they_were_written_even_in_a_title():
    inlined = inline_template_css(
        page("<title>{{ subject }} &amp; more</title><table><tr><td>a</td></tr>{{ row }}<tr><td>b</td></tr></table>")
    )

    assert "<title>{{ subject }} &amp; more</title>" in inlined
    assert "</tr>{{ row }}<tr>" in inlined


def test_an_ampersand_in_an_expression_inside_an_attribute_is_refused_as_the_inliner_would_escape_it():
    with pytest.raises(TemplateInliningError):
        inline_template_css(page("<a href=\"{{ a ~ '&' }}\">x</a>"))


def test_an_undefined_name_is_an_error_not_an_empty_string():
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        jinja_environment().from_string("{{ missing }}").render()


@given(st.text())
def test_jinja_escapes_the_characters_django_escapes_with_equivalent_entities(text):
    # markupsafe writes &#34; and &#39; where Django writes &quot; and &#x27;: the same characters.
    assert str(jinja_escape(text)).replace("&#34;", "&quot;").replace("&#39;", "&#x27;") == django_escape(text)
    assert html.unescape(str(jinja_escape(text))) == text
