import xml.etree.ElementTree as ET

import pytest

from digest.ops.charts import NO_DATA, Series, bar_chart, line_chart, nice_ceiling, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(html: str) -> ET.Element:
    """The chart's <svg> element, parsed strictly: a chart must be well-formed XML."""
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])  # noqa: S314 - the chart this project drew, not outside XML


def test_it_rounds_axis_maxima_to_numbers_people_read():
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 11, 101, 1000)] == [1, 0.5, 1, 10, 20, 200, 1000]


def test_a_line_chart_is_an_accessible_image_with_a_point_per_value():
    html = line_chart("Subscribers", ["d1", "d2", "d3"], [Series("active", [1, 2, 3]), Series("paused", [0, 1, 0])])
    svg = svg_of(html)
    assert svg.get("role") == "img"
    labelled = svg.get("aria-labelledby").split()
    assert svg.find(f"{SVG}title").get("id") == labelled[0]
    assert svg.find(f"{SVG}desc").text == "3 points from d1 to d3. Latest (d3): active 3, paused 0."
    assert len(svg.findall(f"{SVG}polyline")) == 2
    tooltips = [c.find(f"{SVG}title").text for c in svg.findall(f"{SVG}circle")]
    assert "d2, active: 2" in tooltips and len(tooltips) == 6


def test_a_stacked_bar_chart_stacks_each_days_series_and_totals_them():
    html = stacked_bar_chart("Digests", ["mon", "tue"], [Series("sent", [4, 0]), Series("failed", [1, 2])])
    svg = svg_of(html)
    bars = {r.find(f"{SVG}title").text: r for r in svg.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None}
    assert set(bars) == {"mon, sent: 4", "mon, failed: 1", "tue, failed: 2"}
    sent, failed = bars["mon, sent: 4"], bars["mon, failed: 1"]
    # failed sits right on top of sent, and is a quarter of its height
    assert float(failed.get("y")) + float(failed.get("height")) == pytest.approx(float(sent.get("y")), abs=0.2)
    assert float(sent.get("height")) == pytest.approx(4 * float(failed.get("height")), abs=0.5)
    assert svg.find(f"{SVG}desc").text == "2 bars from mon to tue. Totals: sent 4, failed 3."


def test_a_bar_chart_draws_one_bar_per_label_longest_for_the_largest():
    svg = svg_of(bar_chart("Topics", ["LLMs", "Vision"], [10, 5], name="followers"))
    widths = [float(r.get("width")) for r in svg.findall(f"{SVG}rect")]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert svg.find(f"{SVG}desc").text == "LLMs: 10; Vision: 5."


@pytest.mark.parametrize(
    "chart",
    [
        lambda: line_chart("Empty", ["a", "b"], [Series("x", [0, 0])]),
        lambda: stacked_bar_chart("Empty", [], [Series("x", [])]),
        lambda: bar_chart("Empty", [], []),
    ],
)
def test_it_says_there_is_no_data_instead_of_drawing_nothing(chart):
    svg = svg_of(chart())
    assert svg.find(f"{SVG}desc").text == NO_DATA
    assert NO_DATA in [t.text for t in svg.iter(f"{SVG}text")]


def test_it_escapes_labels_and_names():
    html = bar_chart("<Topics>", ['<script>alert("x")</script>'], [3])
    assert "<script>" not in html
    assert svg_of(html).find(f"{SVG}title").text == "<Topics>"


def test_it_gives_the_numbers_as_a_table_too():
    html = line_chart("Subscribers", ["d1", "d2"], [Series("active", [1, 1234])])
    assert '<th scope="row">d2</th><td>1,234</td>' in html


def test_it_refuses_series_that_do_not_fit_the_labels():
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line_chart("Bad", ["a", "b", "c"], [Series("x", [1, 2])])
