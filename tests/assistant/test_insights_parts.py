"""The Insights page's pure parts: grouping by meaning, chart geometry, CSV cells."""

from __future__ import annotations

from assistant.insights import charts, grouping, tables


def test_greedy_groups_are_deterministic_and_respect_the_threshold():
    vectors = [[1, 0, 0], [0.95, 0.05, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0.97, 0.1]]

    first = grouping.greedy_groups(vectors, threshold=0.8)
    again = grouping.greedy_groups(vectors, threshold=0.8)

    assert [g.members for g in first] == [[0, 1, 3], [2, 4]] == [g.members for g in again]
    assert [g.members for g in grouping.greedy_groups(vectors, threshold=0.9999)] == [
        [0], [1], [2], [3], [4]
    ]  # fmt: skip


def test_vectors_of_two_models_never_match():
    assert grouping.cosine([1, 0, 0], [1, 0]) == 0.0


def test_a_bar_chart_scales_to_a_round_top_and_labels_each_bar():
    chart = charts.bar_chart("Q", ["d1", "d2", "d3"], [0, 5, 10])

    assert [t.label for t in chart.ticks] == ["0", "5", "10"] and len(chart.bars) == 3
    assert chart.bars[2].height > chart.bars[1].height > chart.bars[0].height == 0
    assert chart.bars[1].label == "d2: 5" and not chart.empty
    assert charts.bar_chart("Q", ["d1"], [0]).empty
    # A week rated 0% helpful is a figure worth showing; a week nobody rated is not.
    assert not charts.bar_chart("%", ["w1", "w2"], [0, None], zero_is_data=True).empty
    assert charts.bar_chart("%", ["w1"], [None], zero_is_data=True).empty
    assert charts.bar_chart("%", ["w1"], [50], top=100).ticks[-1].label == "100"


def test_a_line_chart_skips_days_without_a_value():
    chart = charts.line_chart("T", ["a", "b", "c"], [("p50", "series-a", [100, None, 300])])

    assert len(chart.lines[0].points.split()) == 2


def test_cells_that_would_start_a_formula_get_a_quote_and_numbers_stay_numbers():
    for hostile in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert tables.safe_cell(hostile) == "'" + hostile
    assert tables.safe_cell(-1) == -1 and tables.safe_cell(None) == ""
    assert tables.safe_cell("plain") == "plain" and tables.safe_cell(True) == "yes"
