"""What pages compute: row lengths, histogram bins, the figures' shapes, the map's projection."""

from __future__ import annotations

import numpy as np

from service.dashboard import charts
from service.dashboard.map import Projection, _flat, _principal_axes
from service.dashboard.views import _bins, words
from workers.data.schema import (
    ClassificationExample,
    MultipleChoiceExample,
    QAExample,
    TaggingExample,
)


def test_words_count_every_text_field_of_each_type():
    assert words(ClassificationExample("1", "a b c", "d e", "x")) == 5
    assert words(MultipleChoiceExample("1", "ctx here", "why", ("yes", "no way"), 0)) == 6
    assert words(QAExample("1", "one two three", "who")) == 4
    assert words(TaggingExample("1", ("New", "York"), ("B", "I"))) == 2


def test_short_length_ranges_get_one_bin_per_word_count():
    edges = _bins(np.array([6.0, 6.0, 7.0, 9.0]))
    counts, _ = np.histogram([6, 6, 7, 9], bins=edges)
    assert counts.tolist() == [2, 1, 0, 1]
    assert _bins(np.arange(1000, dtype=float)) == 31  # √n bins over a long range


def test_heatmap_is_centred_on_no_gain():
    figure = charts.heatmap(["s1", "s2"], ["t"], [[2.0], [-5.0]])
    trace = figure["data"][0]
    assert (trace["zmin"], trace["zmax"]) == (-5.0, 5.0)


def test_large_maps_draw_with_webgl_small_ones_without():
    def points(n):
        return [{"id": i, "name": f"t{i}", "type": "regression", "x": i, "y": 0, "own": False}
                for i in range(n)]  # fmt: skip

    assert charts.task_map(points(10), "semb")["data"][0]["type"] == "scatter"
    assert charts.task_map(points(10_000), "semb")["data"][0]["type"] == "scattergl"


def test_the_projection_places_a_library_task_where_the_map_shows_it():
    rng = np.random.default_rng(0)
    unit = np.vstack([_flat([rng.standard_normal(8), rng.standard_normal(4)]) for _ in range(6)])
    mean = unit.mean(0)
    axes = _principal_axes(unit - mean)
    found = Projection(
        "enc", 1, ("a", "b"), list(range(6)), ["n"] * 6, ["classification"] * 6,
        unit, mean, axes, (unit - mean) @ axes.T,
    )  # fmt: skip
    assert np.allclose(found.place(unit[2:3]), found.points[2:3], atol=1e-5)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
