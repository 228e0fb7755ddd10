"""PNG plots of evaluation results, drawn on a private Agg canvas (no pyplot state) and written atomically."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tagcode.io import atomic_path


def plot_pr_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path) -> None:
    """Precision–recall curves, one line per name (``name → (precision, recall)``), to a PNG."""
    fig, (ax,) = _figure(1)
    for name, (precision, recall) in curves.items():
        ax.plot(recall, precision, marker=".", label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision–recall")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    _save(fig, path)


def plot_map_vs_bits(panels: Mapping[str, Iterable[tuple[str, int, float]]], path: str | Path, *,
                     references: Mapping[str, Mapping[str, float]] | None = None,
                     chance: Mapping[str, float] | None = None) -> None:
    """mAP against code length: one panel per protocol (``title → rows of (method, bits, mAP)``), one line
    per method, dashed horizontal lines for ``references`` (``title → {label: mAP}``, e.g. the
    uncompressed features) and a dotted one for ``chance`` (``title → random-ranking mAP``), to a PNG.
    The y-axis starts at 0, so gaps between methods are drawn to scale."""
    import matplotlib

    panels = {title: list(rows) for title, rows in panels.items()}
    methods = sorted({method for rows in panels.values() for method, _, _ in rows})
    # One colour per method in every panel (tab20: 20 distinct ones), one legend beside the panels, so a
    # grid of 15+ methods and ablations stays readable (a legend per panel covered the lines).
    palette = matplotlib.colormaps["tab20"]
    color = {m: palette(i % 20) for i, m in enumerate(methods)}
    fig, axes = _figure(max(1, len(panels)))
    legend: dict[str, object] = {}
    for ax, (title, rows) in zip(axes, panels.items(), strict=False):
        by_method: dict[str, list[tuple[int, float]]] = {}
        for method, bits, value in rows:
            by_method.setdefault(method, []).append((int(bits), float(value)))
        for method, points in sorted(by_method.items()):
            points.sort()
            ax.plot([b for b, _ in points], [v for _, v in points], marker="o", label=method, color=color[method],
                    linestyle="-" if len(points) > 1 else "none")
        for label, value in sorted((references or {}).get(title, {}).items()):
            ax.axhline(float(value), color="0.3", linestyle="--", linewidth=1, label=label)
        if title in (chance or {}):
            ax.axhline(float(chance[title]), color="0.5", linestyle=":", linewidth=1.5, label="random ranking")
        ax.set(xlabel="bits", ylabel="mAP", title=title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)
    _save(fig, path)


def _figure(panels: int):
    """A figure with ``panels`` side-by-side axes on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * panels, 4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
