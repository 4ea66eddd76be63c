"""Inline SVG charts: well-formed, labelled, escaped, and sensible with no data or a single point."""

import xml.etree.ElementTree as ET

from licensing.core.charts import Chart, Series, line_chart, nice_top, stacked_bars, ticks

NS = {"svg": "http://www.w3.org/2000/svg"}
HOSTILE = "<script>alert('sku')</script>&\""


def chart(labels: tuple[str, ...], *series: Series, chart_id: str = "c") -> Chart:
    return Chart(chart_id, "Outcomes per day", "day (UTC)", "rows", labels, series)


def svg(markup: str) -> ET.Element:
    root = ET.fromstring(markup)  # our own markup, parsed to prove it is well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_stacked_bars_draw_one_segment_per_positive_value() -> None:
    """Zeros and gaps draw nothing; every segment carries its series, label and value."""
    root = svg(stacked_bars(chart(("d1", "d2", "d3"), Series("verified", (2, 0, 5)), Series("failed", (1, None, 0)))))
    bars = root.findall(".//svg:rect[@class='bar']", NS)
    assert [(b.get("data-label"), b.get("data-series"), b.get("data-value")) for b in bars] == [
        ("d1", "verified", "2"),
        ("d1", "failed", "1"),
        ("d3", "verified", "5"),
    ]
    assert bars[0].findtext("svg:title", namespaces=NS) == "d1 verified: 2"


def test_a_stack_is_as_tall_as_its_total() -> None:
    """Segments sit on top of each other: the stack of 2 + 1 reaches the height of the single bar of 3."""
    root = svg(stacked_bars(chart(("a", "b"), Series("x", (2, 3)), Series("y", (1, 0)))))
    a_x, a_y, b_x = root.findall(".//svg:rect[@class='bar']", NS)
    assert float(a_y.get("y") or 0) == float(b_x.get("y") or 0)
    assert float(a_x.get("y") or 0) == float(a_y.get("y") or 0) + float(a_y.get("height") or 0)


def test_every_chart_names_itself_and_labels_its_axes_and_series() -> None:
    """role=img, aria-label and a <title> (referenced by aria-labelledby), both axis labels, a legend key per series."""
    root = svg(stacked_bars(chart(("d1",), Series("verified", (1,)), Series("failed", (0,)), chart_id="outcomes")))
    assert (root.get("role"), root.get("aria-label"), root.get("data-chart")) == ("img", "Outcomes per day", "outcomes")
    title = root.find("svg:title", NS)
    assert title is not None
    assert (title.text, title.get("id")) == ("Outcomes per day", root.get("aria-labelledby"))
    assert {"day (UTC)", "rows", "verified", "failed"} <= set(texts(root))
    assert [k.get("data-series") for k in root.findall(".//svg:rect[@class='key']", NS)] == ["verified", "failed"]


def test_hostile_names_are_escaped_text() -> None:
    """A SKU named like markup stays text: no script element, the name round-trips through the XML parser."""
    markup = line_chart(
        Chart("seats", HOSTILE, HOSTILE, HOSTILE, (HOSTILE,), (Series(HOSTILE, (3,)),)), ceilings={HOSTILE: 5}
    )
    assert "<script" not in markup
    root = svg(markup)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert root.get("aria-label") == HOSTILE
    assert HOSTILE in texts(root)
    [point] = root.findall(".//svg:circle[@class='point']", NS)
    assert point.get("data-series") == HOSTILE


def test_no_external_reference_or_script_in_any_chart() -> None:
    """Nothing for the CSP to block: no href, no src, no script, no foreignObject, no event handler."""
    for markup in (stacked_bars(chart(("d",), Series("v", (1,)))), line_chart(chart(("d",), Series("v", (1,))))):
        for element in svg(markup).iter():
            assert not element.tag.endswith(("script", "foreignObject", "image", "use", "a"))
            assert not [a for a in element.attrib if a.endswith("href") or a == "src" or a.startswith("on")]


def test_lines_draw_a_marker_per_recorded_point_and_skip_gaps() -> None:
    """One polyline per series with two or more points; a circle per recorded value; None leaves a gap."""
    root = svg(line_chart(chart(("d1", "d2", "d3"), Series("EMS", (4, None, 6)), Series("E5", (None, None, 1)))))
    lines = root.findall(".//svg:polyline[@class='line']", NS)
    assert [ln.get("data-series") for ln in lines] == ["EMS"]
    assert len((lines[0].get("points") or "").split()) == 2
    points = root.findall(".//svg:circle[@class='point']", NS)
    assert [(p.get("data-series"), p.get("data-label"), p.get("data-value")) for p in points] == [
        ("EMS", "d1", "4"),
        ("EMS", "d3", "6"),
        ("E5", "d3", "1"),
    ]


def test_a_ceiling_is_a_dashed_line_and_raises_the_axis() -> None:
    """The enabled seats are drawn dashed, and the y axis reaches them even when usage is far below."""
    root = svg(line_chart(chart(("d1", "d2"), Series("EMS", (4, 5))), ceilings={"EMS": 250}))
    [ceiling] = root.findall(".//svg:line[@class='ceiling']", NS)
    assert (ceiling.get("data-series"), ceiling.get("data-value"), ceiling.get("stroke-dasharray")) == (
        "EMS",
        "250",
        "6 4",
    )
    assert texts(root)[len(ticks(500)) - 1] == "500"  # the top tick


def test_no_data_and_one_point_render_without_dividing_by_zero() -> None:
    """No labels, all zeros, or a single day: a framed chart that says 'No data yet' or shows the one value."""
    for markup in (
        stacked_bars(chart(())),
        stacked_bars(chart(("d1",), Series("v", (0,)))),
        line_chart(chart(())),
        line_chart(chart(("d1",), Series("EMS", (None,)))),
    ):
        assert "No data yet" in texts(svg(markup))
    single = svg(line_chart(chart(("d1",), Series("EMS", (7,)))))
    assert len(single.findall(".//svg:circle[@class='point']", NS)) == 1
    assert "No data yet" not in texts(single)


def test_the_axis_top_is_a_round_number_at_or_above_the_largest_value() -> None:
    """1, 2 or 5 times a power of ten, never zero; ticks are whole numbers from zero to the top."""
    assert [nice_top(v) for v in (0, 1, 2, 3, 7, 10, 11, 23, 999)] == [1, 1, 2, 5, 10, 10, 20, 50, 1000]
    assert ticks(1) == (0, 1)
    assert ticks(50) == (0, 10, 20, 30, 40, 50)
    assert ticks(20) == (0, 4, 8, 12, 16, 20)


def test_x_labels_are_thinned_to_fit_but_keep_the_newest() -> None:
    """Thirty days show at most a handful of tick labels, and the newest (today) is always one of them."""
    labels = tuple(f"12-{d:02d}" for d in range(1, 31))
    root = svg(stacked_bars(chart(labels, Series("v", (1,) * 30))))
    shown = [t.text for t in root.findall(".//svg:text[@class='x-tick']", NS)]
    assert shown[-1] == "12-30"
    assert 2 <= len(shown) <= 9


def test_bars_stay_slender_when_there_are_few() -> None:
    """Two runs draw two bars of a bar's width, not two halves of the plot."""
    root = svg(stacked_bars(chart(("r1", "r2"), Series("v", (1, 2)))))
    assert {float(b.get("width") or 0) for b in root.findall(".//svg:rect[@class='bar']", NS)} == {36.0}
