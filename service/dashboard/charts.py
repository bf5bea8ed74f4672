"""Plotly figures as plain dicts (``{"data": [...], "layout": {...}}``): the page hands them to
the ``plotly.min.js`` the installed plotly package ships, so no Python plotting runs here."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

Figure = dict[str, Any]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, readable on white
TYPE_COLOURS = {
    "classification": "#0072B2",
    "regression": "#E69F00",
    "multiple_choice": "#009E73",
    "extractive_qa": "#CC79A7",
    "sequence_labeling": "#D55E00",
}
ACCENT = "#0072B2"
MUTED = "#6b7280"


def plain(texts: Sequence[Any]) -> list[str]:
    """Names as Plotly shows them: it reads a subset of HTML (<b>, <a href>) in text, so a
    label or task name is passed with its markup characters as entities."""
    return [str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for t in texts]


def layout(title: str = "", **extra: Any) -> dict[str, Any]:
    """The shared look: small margins (phones), system font, no title when the page has one."""
    base = {
        "margin": {"l": 60, "r": 12, "t": 36 if title else 12, "b": 48},
        "font": {"family": "system-ui, sans-serif", "size": 13, "color": "#1f2937"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "title": {"text": title, "font": {"size": 14}} if title else None,
        "showlegend": False,
        "autosize": True,
    }
    return {k: v for k, v in {**base, **extra}.items() if v is not None}


def bars(labels: Sequence[str], values: Sequence[float], title: str, axis: str) -> Figure:
    """A vertical bar chart (label distributions, per-seed values)."""
    trace = {"type": "bar", "x": plain(labels), "y": list(values), "marker": {"color": ACCENT}}
    return {"data": [trace], "layout": layout(title, yaxis={"title": {"text": axis}})}


def histogram(edges: Sequence[float], counts: Sequence[int], title: str, axis: str) -> Figure:
    """Counts per bin, bins given by their edges (len(edges) == len(counts) + 1)."""
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    trace = {
        "type": "bar",
        "x": centres,
        "y": list(counts),
        "width": widths,
        "marker": {"color": ACCENT, "line": {"color": "#ffffff", "width": 1}},
        "hovertemplate": "%{x:.0f} words: %{y} rows<extra></extra>",
    }
    axes = {"xaxis": {"title": {"text": axis}}, "yaxis": {"title": {"text": "rows"}}}
    return {"data": [trace], "layout": layout(title, bargap=0, **axes)}


def against_baseline(
    sources: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    baseline: tuple[float, float],
    metric: str,
) -> Figure:
    """Each tried source's score (mean ± std over seeds) beside the no-transfer baseline,
    drawn as a line with its ± std band."""
    mean, std = baseline
    trace = {
        "type": "bar",
        "x": plain(sources),
        "y": list(means),
        "error_y": {"type": "data", "array": list(stds), "visible": True, "color": "#111827"},
        "marker": {"color": [ACCENT if m >= mean else "#D55E00" for m in means]},
        "hovertemplate": "%{x}: %{y:.2f}<extra></extra>",
    }
    if len(sources) < 4:  # a lone bar would span the whole chart
        trace["width"] = 0.4
    shapes = [
        {
            "type": "rect",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": mean - std,
            "y1": mean + std,
            "fillcolor": "rgba(107,114,128,0.15)",
            "line": {"width": 0},
        },
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": mean,
            "y1": mean,
            "line": {"color": MUTED, "dash": "dash", "width": 2},
        },
    ]
    note = {
        "xref": "paper",
        "x": 1,
        "y": mean,
        "xanchor": "right",
        "yanchor": "bottom",
        "text": f"baseline {mean:.2f} ± {std:.2f}",
        "showarrow": False,
        "font": {"color": MUTED},
    }
    return {
        "data": [trace],
        "layout": layout(shapes=shapes, annotations=[note], yaxis={"title": {"text": metric}}),
    }


def heatmap(sources: Sequence[str], targets: Sequence[str], gains: list[list[float | None]]):
    """Mean gain per source (row) and target (column), diverging around 0 (no gain)."""
    finite = [abs(g) for row in gains for g in row if g is not None and math.isfinite(g)]
    bound = max(finite, default=1.0) or 1.0
    trace = {
        "type": "heatmap",
        "x": plain(targets),
        "y": plain(sources),
        "z": gains,
        "zmin": -bound,
        "zmax": bound,
        "colorscale": [[0, "#b2182b"], [0.5, "#f7f7f7"], [1, "#2166ac"]],
        "colorbar": {"title": {"text": "gain"}},
        "hovertemplate": "%{y} → %{x}: %{z:.2f}<extra></extra>",
        "hoverongaps": False,
    }
    height = max(320, 18 * len(sources) + 140)
    axes = {
        "xaxis": {"title": {"text": "target"}, "tickangle": -45, "automargin": True},
        "yaxis": {"title": {"text": "source"}, "automargin": True, "autorange": "reversed"},
    }
    return {"data": [trace], "layout": layout(height=height, **axes)}


def gain_strips(points: Sequence[tuple[str, str, float]]) -> Figure:
    """Per target, one dot per source's mean gain, the baseline as the zero line
    (Vu et al. 2020, Figure 2)."""
    targets = plain(sorted({t for t, _, _ in points}))
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": plain([t for t, _, _ in points]),
        "y": [g for _, _, g in points],
        "text": plain([s for _, s, _ in points]),
        "marker": {"color": ACCENT, "size": 8, "opacity": 0.75},
        "hovertemplate": "%{text} → %{x}: %{y:.2f}<extra></extra>",
    }
    zero = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": 0,
        "y1": 0,
        "line": {"color": MUTED, "dash": "dash"},
    }
    axes = {
        "xaxis": {
            "categoryorder": "array",
            "categoryarray": targets,
            "tickangle": -45,
            "automargin": True,
        },
        "yaxis": {"title": {"text": "gain over the baseline"}, "zeroline": False},
    }
    return {"data": [trace], "layout": layout(shapes=[zero], **axes)}


def metric_bars(
    methods: Sequence[str], values: Sequence[float | None], title: str, axis: str, best: str | None
) -> Figure:
    """One metric per method (quality page); ``best`` (the served method chosen) stands out."""
    trace = {
        "type": "bar",
        "x": list(methods),
        "y": list(values),
        "marker": {"color": [ACCENT if m == best else "#9cc3e6" for m in methods]},
        "hovertemplate": "%{x}: %{y:.3f}<extra></extra>",
    }
    axes = {"yaxis": {"title": {"text": axis}}, "xaxis": {"tickangle": -45, "automargin": True}}
    return {"data": [trace], "layout": layout(title, **axes)}


WEBGL_FROM = 2000  # points from which the map draws with WebGL
NAMED_UP_TO = 80  # points up to which the map writes every task's name


def task_map(points: Sequence[dict[str, Any]], method: str) -> Figure:
    """Tasks in 2-D, one trace per type (the legend filters them); the caller's own tasks as
    larger diamonds. SVG up to ``WEBGL_FROM`` points (works without WebGL), ``scattergl`` beyond
    (stays fluid with 10,000)."""
    kind = "scattergl" if len(points) >= WEBGL_FROM else "scatter"
    named = len(points) <= NAMED_UP_TO  # a small map names its points; a large one on hover
    traces = []
    for own in (False, True):
        for task_type, colour in TYPE_COLOURS.items():
            chosen = [p for p in points if p["type"] == task_type and p["own"] == own]
            if not chosen:
                continue
            traces.append(
                {
                    "type": kind,
                    "mode": "markers+text" if named else "markers",
                    "textposition": "top center",
                    "textfont": {"size": 10, "color": "#374151"},
                    "name": f"{task_type}{' (yours)' if own else ''}",
                    "x": [p["x"] for p in chosen],
                    "y": [p["y"] for p in chosen],
                    "text": plain([p["name"] for p in chosen]),
                    "customdata": [p["id"] for p in chosen],
                    "marker": {
                        "color": colour,
                        "size": 13 if own else 8,
                        "symbol": "diamond" if own else "circle",
                        "line": {"color": "#111827", "width": 1 if own else 0},
                    },
                    "hovertemplate": "%{text}<extra>" + task_type + "</extra>",
                }
            )
    legend = {"orientation": "h", "y": -0.12}
    axes = {"xaxis": {"title": {"text": f"{method} PC1"}}, "yaxis": {"title": {"text": "PC2"}}}
    return {"data": traces, "layout": layout(showlegend=True, legend=legend, height=520, **axes)}
