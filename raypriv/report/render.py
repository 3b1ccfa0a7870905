"""The one trade-off plot: A_T (y, higher is better) against A_B^N (x, lower is better).

Sweeps (`raypriv.report.front`), baselines and comparisons (`raypriv compare`) all draw through
`plot_tradeoff` (a static PNG, matplotlib) and `tradeoff_html` (the same points as a self-contained
interactive plotly page that opens offline and in MLflow's artifact viewer). A `Point` carries its
kind, which sets its style: sweep trials, the front, confirmed configurations, the paper's
baselines, comparison arms and controls. `tradeoff_figure` and `tradeoff_plotly` build the figures
without writing them (a sweep's report logs them with `MlflowClient.log_figure`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# kind -> (matplotlib marker, colour, legend label); any other kind (an arm, a learned f_d) gets
# a star of its own colour and its kind as the label.
_STYLES = {
    "trial": ("o", "0.65", "trial (dominated)"),
    "front": ("o", "tab:red", "Pareto front"),
    "confirmed": ("o", "0.3", "confirmed (dominated)"),
    "raw": ("s", "black", "raw frames"),
    "downsample": ("o", "tab:blue", "Method 1: downsampling"),
    "face_crop": ("^", "tab:orange", "Method 4: face crop"),
    "body_crop": ("v", "tab:red", "Method 5: body crop"),
    "silhouette": ("D", "tab:green", "silhouette (hand-made)"),
}
_OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "tab:green", "tab:blue")


@dataclass(frozen=True)
class Point:
    """One point of the trade-off; accuracies are fractions, std NaN when there is a single run."""

    label: str
    kind: str
    target_acc: float
    privacy_acc: float
    target_std: float = math.nan
    privacy_std: float = math.nan
    faint: bool = False  # drawn light: a single seed beside its arm's bold mean, a screening trial beside confirmed ones
    hover: str = ""  # details for the interactive page


# The privacy score's name (`raypriv.report.confirmed.privacy_label`) -> its axis title and chance line.
PRIVACY_AXES = {"A_B^N": ("A_B^N: best fresh attacker's identity accuracy (%)", "identity chance"),
                "cMAP^N": ("cMAP^N: best fresh attacker's attribute cMAP (%)", "attribute chance")}


def baseline_kind(method: str) -> str:
    """The style kind of a baseline method name (`downsample_s8` -> `downsample`)."""
    return "downsample" if method.startswith("downsample_s") else method


def _style(kind: str, others: list[str]) -> tuple[str, str, str]:
    if kind in _STYLES:
        return _STYLES[kind]
    return "*", _OTHER_COLOURS[others.index(kind) % len(_OTHER_COLOURS)], kind


def _size(point: Point) -> float:
    number = re.search(r"(\d+)$", point.label)
    if point.kind == "downsample" and number:
        return 40.0 + 30.0 * int(number.group(1)) ** 0.75
    return 70.0 if point.kind in _STYLES else 160.0


def plot_tradeoff(points: Sequence[Point], path: str | Path, *, title: str,
                  chance: tuple[float, float] = (math.nan, math.nan),
                  hypervolume: Sequence[tuple[int, float]] = (), privacy: str = "A_B^N") -> Path:
    """Write the trade-off as a PNG (`tradeoff_figure`)."""
    import matplotlib.pyplot as plt

    fig = tradeoff_figure(points, title=title, chance=chance, hypervolume=hypervolume, privacy=privacy)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tradeoff_figure(points: Sequence[Point], *, title: str, chance: tuple[float, float] = (math.nan, math.nan),
                    hypervolume: Sequence[tuple[int, float]] = (), privacy: str = "A_B^N"):
    """The trade-off as a matplotlib figure: every point styled by kind (bold front points joined by a
    step line, error bars where a point has a std, faint single runs), chance levels as dotted lines,
    and beside it the hypervolume after each trial when `hypervolume` is given. `chance` = (action,
    privacy); `privacy` names the x axis (`PRIVACY_AXES`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if hypervolume else 1
    fig, axes = plt.subplots(1, panels, figsize=(8.6 + 4.2 * (panels - 1), 5.2),
                             gridspec_kw={"width_ratios": [2, 1][:panels]}, squeeze=False)
    ax = axes[0][0]
    others = sorted({p.kind for p in points if p.kind not in _STYLES})
    front = sorted((p for p in points if p.kind == "front" and not p.faint), key=lambda p: p.privacy_acc)
    if front:
        ax.step([100 * p.privacy_acc for p in front], [100 * p.target_acc for p in front], where="post",
                c="tab:red", lw=1.2, alpha=0.6, zorder=3)
    labelled: set[str] = set()
    for p in points:
        marker, colour, legend = _style(p.kind, others)
        x, y = 100 * p.privacy_acc, 100 * p.target_acc
        if math.isfinite(p.target_std) or math.isfinite(p.privacy_std):
            ax.errorbar(x, y, xerr=_finite(100 * p.privacy_std), yerr=_finite(100 * p.target_std), fmt="none",
                        ecolor=colour, elinewidth=1, capsize=3, zorder=3)
        show = legend not in labelled and not p.faint
        ax.scatter(x, y, s=_size(p) * (0.5 if p.faint else 1.0), marker=marker, color=colour, edgecolors="black",
                   linewidths=0 if p.faint else 0.5, alpha=0.3 if p.faint else 0.9, zorder=4,
                   label=legend if show else None)
        labelled |= {legend} if show else set()
        if not p.faint and p.kind != "trial":
            ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    chance_t, chance_b = chance
    if math.isfinite(chance_b):
        ax.axvline(100 * chance_b, ls=":", c="gray", lw=1, label=f"{PRIVACY_AXES[privacy][1]} ({100 * chance_b:.1f} %)")
    if math.isfinite(chance_t):
        ax.axhline(100 * chance_t, ls=":", c="gray", lw=1, label=f"action chance ({100 * chance_t:.1f} %)")
    ax.set(xlim=(0, 105), ylim=(0, 105), title=title,
           xlabel=f"{PRIVACY_AXES[privacy][0]}, lower = more private",
           ylabel="A_T: action accuracy on f_d(X) (%), higher = more useful")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if hypervolume:
        _hypervolume_panel(axes[0][1], hypervolume)
    fig.tight_layout()
    return fig


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _hypervolume_panel(ax, hypervolume: Sequence[tuple[int, float]]) -> None:
    numbers, values = zip(*hypervolume)
    ax.step(numbers, values, where="post", c="tab:red")
    ax.scatter(numbers, values, s=12, c="tab:red")
    ax.set(xlabel="trial number", ylabel="hypervolume (reference: A_T 0 %, A_B^N 100 %)", ylim=(0, 1))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("front quality after each trial", fontsize=10)
    ax.grid(alpha=0.3)


# How the interactive page is written: plotly.js inlined (not a CDN link), so the page opens offline
# and inside MLflow's artifact viewer; also what `MlflowClient.log_figure` gets as save_kwargs.
HTML_KWARGS = {"include_plotlyjs": True, "full_html": True, "div_id": "tradeoff"}


def tradeoff_html(points: Sequence[Point], path: str | Path, *, title: str,
                  chance: tuple[float, float] = (math.nan, math.nan), intro: str = "", privacy: str = "A_B^N") -> Path:
    """The trade-off as one self-contained interactive page (`tradeoff_plotly`): hover a point for
    its details; `intro` is a line of context above the chart."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tradeoff_plotly(points, title=title, chance=chance, privacy=privacy).write_html(path, **HTML_KWARGS)
    if intro:
        page = path.read_text()
        path.write_text(page.replace("<body>", f"<body><p style='font:14px sans-serif'>{intro}</p>", 1))
    return path


def tradeoff_plotly(points: Sequence[Point], *, title: str, chance: tuple[float, float] = (math.nan, math.nan),
                    privacy: str = "A_B^N"):
    """The trade-off as an interactive plotly figure (the same points and styles as the PNG)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    others = sorted({p.kind for p in points if p.kind not in _STYLES})
    for kind in dict.fromkeys(p.kind for p in points):
        group = [p for p in points if p.kind == kind]
        _, colour, legend = _style(kind, others)
        fig.add_trace(go.Scatter(
            x=[100 * p.privacy_acc for p in group], y=[100 * p.target_acc for p in group],
            mode="markers+text" if kind != "trial" else "markers", name=legend,
            text=[p.label if not p.faint else "" for p in group], textposition="top right",
            hovertext=[p.hover or p.label for p in group], hoverinfo="text",
            marker=dict(color=_plotly_colour(colour), size=[6 if p.faint else 11 for p in group],
                        opacity=[0.35 if p.faint else 0.9 for p in group], line=dict(width=1, color="black"),
                        symbol=_plotly_symbol(kind)),
            error_x=_error_bars(group, "privacy_std"), error_y=_error_bars(group, "target_std"),
        ))
    chance_t, chance_b = chance
    if math.isfinite(chance_b):
        fig.add_vline(x=100 * chance_b, line_dash="dot", line_color="gray", annotation_text=PRIVACY_AXES[privacy][1])
    if math.isfinite(chance_t):
        fig.add_hline(y=100 * chance_t, line_dash="dot", line_color="gray", annotation_text="action chance")
    fig.update_layout(title=title, template="plotly_white", width=900, height=620,
                      xaxis=dict(title=f"{PRIVACY_AXES[privacy][0]}, lower = more private", range=[0, 105]),
                      yaxis=dict(title="A_T (%), higher = more useful", range=[0, 105]))
    return fig


def _error_bars(points: Sequence[Point], attribute: str) -> dict:
    values = [100 * getattr(p, attribute) for p in points]
    if not any(math.isfinite(v) for v in values):
        return dict(visible=False)
    return dict(type="data", array=[v if math.isfinite(v) else 0.0 for v in values], visible=True)


def _plotly_colour(colour: str) -> str:
    try:
        grey = float(colour)
    except ValueError:
        return colour.removeprefix("tab:")
    return f"rgb({int(255 * grey)},{int(255 * grey)},{int(255 * grey)})"


def _plotly_symbol(kind: str) -> str:
    return {"raw": "square", "face_crop": "triangle-up", "body_crop": "triangle-down",
            "silhouette": "diamond", "downsample": "circle", "trial": "circle", "front": "circle",
            "confirmed": "circle"}.get(kind, "star")
