"""The report's plots as drawn: tick labels of the latency violins' log axis stay readable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from results.report import plots

LONG = "gemm[onnxruntime:cpu](dtype=float32,k=64,m=64,n=64,variant=tiled-"  # _label cuts at 60


def _x_labels(fig) -> list[tuple[str, object]]:
    """(text, pixel box) of each drawn x tick label inside the axes, left to right."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    out = []
    for t in ax.get_xticklabels(which="both"):
        box = t.get_window_extent(renderer)
        if t.get_visible() and t.get_text() and ax.bbox.x0 - 1 <= (box.x0 + box.x1) / 2 \
                <= ax.bbox.x1 + 1:
            out.append((t.get_text(), box))
    return sorted(out, key=lambda p: p[1].x0)


@pytest.mark.parametrize("lo,hi", [(4.5e-6, 6e-6), (1.5e-6, 9.5e-6), (2e-6, 3e-5),
                                   (1.1e-6, 9.8e-5), (1.1e-6, 9.8e-4), (1e-7, 2.0),
                                   (1e-9, 20.0)])
@pytest.mark.parametrize("label", ["spin", LONG])
def test_violin_log_axis_labels_do_not_overlap(lo, hi, label):
    rng = np.random.default_rng(1)
    samples = {f"{label}{i}": rng.uniform(a, b, 200)
               for i, (a, b) in enumerate([(lo, lo * 1.2), (hi / 1.2, hi)])}
    fig = plots.latency_distributions(samples, "latency")
    labels = _x_labels(fig)
    texts = [t for t, _ in labels]
    assert 2 <= len(labels) <= 10, texts
    assert len(set(texts)) == len(texts), texts
    for (a, box_a), (b, box_b) in itertools.pairwise(labels):
        assert box_a.x1 + 2 <= box_b.x0, f"{a!r} and {b!r} overlap: {texts}"
