"""The one trade-off plot (PNG and interactive page) that sweeps, baselines and comparisons draw."""

from __future__ import annotations

import math

from raypriv.report.render import Point, baseline_kind, plot_tradeoff, tradeoff_figure, tradeoff_html, tradeoff_plotly

POINTS = [
    Point("raw", "raw", 0.9, 1.0),
    Point("downsample_s8", baseline_kind("downsample_s8"), 0.3, 0.95),
    Point("#3", "front", 0.8, 0.4, hover="trial_0003: gamma=2"),
    Point("#1", "trial", 0.6, 0.7),
    Point("game", "game", 0.78, 0.45, target_std=0.02, privacy_std=0.05),
    Point("game s0", "game", 0.8, 0.41, faint=True),
]


def test_plot_tradeoff_writes_a_png_for_every_kind_of_point(tmp_path):
    path = plot_tradeoff(POINTS, tmp_path / "sub" / "tradeoff.png", title="t", chance=(1 / 8, 1 / 13),
                         hypervolume=[(0, 0.2), (3, 0.4)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert baseline_kind("downsample_s16") == "downsample" and baseline_kind("face_crop") == "face_crop"


def test_tradeoff_html_is_one_self_contained_page_with_the_points_and_their_details(tmp_path):
    page = tradeoff_html(POINTS, tmp_path / "tradeoff.html", title="sweep x", chance=(0.125, math.nan),
                         intro="2 complete trials").read_text()
    assert "<script src=" not in page  # plotly.js inlined: opens offline and in MLflow's artifact viewer
    assert "Plotly.newPlot" in page and "trial_0003: gamma=2" in page and "2 complete trials" in page
    assert page.count('"name":"Method 1: downsampling"') == 1 and '"name":"game"' in page


def test_the_privacy_axis_is_named_for_the_score_it_shows():
    assert tradeoff_figure(POINTS, title="t").axes[0].get_xlabel().startswith("A_B^N: best fresh attacker's identity")
    figure = tradeoff_figure(POINTS, title="t", chance=(0.1, 0.3), privacy="cMAP^N")
    assert figure.axes[0].get_xlabel().startswith("cMAP^N: best fresh attacker's attribute cMAP")
    assert "attribute chance (30.0 %)" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    page = tradeoff_plotly(POINTS, title="t", privacy="cMAP^N")
    assert page.layout.xaxis.title.text.startswith("cMAP^N") and "A_B^N" not in page.layout.xaxis.title.text
