"""PNG plots of evaluation results (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tagcode.io import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path) -> None:
    """Precision–recall curves, one line per name, to a PNG."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for name, (precision, recall) in curves.items():
        ax.plot(recall, precision, marker=".", label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1), title="precision–recall")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def plot_map_vs_bits(panels: Mapping[str, Iterable[tuple[str, int, float]]], path: str | Path) -> None:
    """mAP against code length: one panel per protocol, one line per method, to a PNG."""
    plt = _figure()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=100, squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items(), strict=True):
        by_method: dict[str, list[tuple[int, float]]] = {}
        for method, bits, value in rows:
            by_method.setdefault(method, []).append((bits, value))
        for method, pts in sorted(by_method.items()):
            pts.sort()
            ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=method)
        ax.set(xlabel="bits", ylabel="mAP", title=title)
        ax.grid(alpha=0.3)
        if by_method:
            ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
