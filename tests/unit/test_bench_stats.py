"""bench/stats.py and the pure helpers of bench/cases.py: summaries, ratios, flatness."""

from __future__ import annotations

import pytest
from bench.cases import Results, flatness
from bench.stats import Samples, ratio


def samples(*values: float, note: str = "") -> Samples:
    s = Samples(note=note)
    for v in values:
        s.add(v)
    return s


def test_median_of_nothing_is_none() -> None:
    assert Samples().median is None


def test_median_of_values() -> None:
    assert samples(3, 1, 2).median == 2
    assert samples(1, 2, 3, 10).median == 2.5


def test_cell_without_values_shows_the_note_or_na() -> None:
    assert Samples().cell() == "n/a"
    assert Samples(note="no daemon").cell() == "no daemon"


def test_cell_of_one_value_is_bold() -> None:
    assert samples(41.6).cell() == "**42**"
    assert samples(41.66).cell("{:.1f}") == "**41.7**"


def test_cell_of_many_values_is_min_median_max() -> None:
    assert samples(30, 10, 20).cell() == "10 / **20** / 30"


def test_cell_appends_the_note() -> None:
    assert samples(1, 2, 3, note="3 lost").cell() == "1 / **2** / 3 (3 lost)"
    assert samples(1234.0, note="x").cell("{:,.0f}") == "**1,234** (x)"


def test_ratio_of_medians() -> None:
    assert ratio(samples(1, 2, 3), samples(4)) == "0.50×"
    assert ratio(samples(30), samples(10)) == "3.00×"


@pytest.mark.parametrize(
    ("a", "b"),
    [(None, Samples()), (Samples(), None), (Samples(), samples(1)), (samples(1), Samples())],
)
def test_ratio_missing_side_is_na(a: Samples | None, b: Samples | None) -> None:
    assert ratio(a, b) == "n/a"


def test_ratio_by_zero_is_na() -> None:
    assert ratio(samples(1), samples(0)) == "n/a"


def test_flatness_first_and_last_ten() -> None:
    v = [100.0] * 10 + [500.0] * 30 + [150.0] * 10
    assert flatness(v) == (100.0, 150.0, 1.5)


def test_flatness_short_series_uses_halves() -> None:
    first, last, flat = flatness([10.0, 20.0, 30.0, 40.0])
    assert (first, last) == (15.0, 35.0)
    assert flat == pytest.approx(35 / 15)


def test_flatness_of_two() -> None:
    assert flatness([2.0, 4.0]) == (2.0, 4.0, 2.0)


def test_results_collects_samples_and_notes() -> None:
    res = Results()
    res.fig("k", "1", "label", "{:.1f}")
    res.add("k", "tether", 1.0)
    res.add("k", "tether", 3.0)
    res.note("k", "docker", "failed")
    assert res.data["k"]["tether"].values == [1.0, 3.0]
    assert res.data["k"]["docker"].cell() == "failed"
    assert res.figures["k"].fmt == "{:.1f}"


def test_results_fig_keeps_the_first_definition() -> None:
    res = Results()
    res.fig("k", "1", "first")
    res.add("k", "tether", 5.0)
    res.fig("k", "2", "second")
    assert res.figures["k"].label == "first"
    assert res.data["k"]["tether"].values == [5.0]
