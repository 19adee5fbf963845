"""Draw docs/assets/architecture.png: the flow of a fedlab run and the package of each part.

Re-draw after changing the picture (the PNG is committed; the docs build does not run this):

    uv run python docs/assets/architecture.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_suffix(".png")
CONFIG, ASSEMBLY, PARTS, LOOP, OUTPUT = "#dbe9f6", "#fde9c9", "#e6f2df", "#f6dbe4", "#ececec"


def box(ax, x, y, w, h, title, body="", color=PARTS, size=9.5):
    """A rounded box at (x, y) (lower left) with a bold title and smaller lines under it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=color, edgecolor="#555555", linewidth=1.0))
    ax.text(x + w / 2, y + h - 0.13, title, ha="center", va="top", fontsize=size,
            fontweight="bold", family="DejaVu Sans")
    if body:
        ax.text(x + w / 2, y + h - 0.43, body, ha="center", va="top", fontsize=size - 1.8,
                family="DejaVu Sans Mono", linespacing=1.35)


def arrow(ax, start, end, label="", rad=0.0):
    """An arrow from ``start`` to ``end``, labelled at its middle."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13,
                                 linewidth=1.2, color="#333333",
                                 connectionstyle=f"arc3,rad={rad}"))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, label, ha="center",
                va="bottom", fontsize=7.5, style="italic", color="#333333")


def main() -> None:
    """Draw and save the picture."""
    fig, ax = plt.subplots(figsize=(13, 7.9))
    ax.set_xlim(0, 13.1)
    ax.set_ylim(0, 7.9)
    ax.axis("off")
    top, height = 5.8, 1.9

    # the top row: command, assembler, trainer, loop
    box(ax, 0.2, top, 2.8, height, "python -m fedlab", "fedlab/__main__.py\nHydra composes\n"
        "conf/<group>/<option>.yaml\n+ command-line overrides", CONFIG)
    box(ax, 3.5, top, 2.8, height, "assembler",
        "fedlab/run.py  run(cfg)\nresume guard, provenance\n(fedlab/runs/)\nbuilds every part",
        ASSEMBLY)
    box(ax, 6.8, top, 2.8, height, "trainer", "fedlab/trainers/\nfederated.py: TFF process\n"
        "central.py: Keras fit", LOOP)
    box(ax, 10.1, top, 2.8, height, "the loop", "trainers/loop.py, per round:\n"
        "cohort = cohorts(r)\nprocess.next(state, ...)\nrow -> callbacks", LOOP)
    arrow(ax, (3.0, top + 1.0), (3.5, top + 1.0), "cfg")
    arrow(ax, (6.3, top + 1.0), (6.8, top + 1.0), "train")
    arrow(ax, (9.6, top + 1.0), (10.1, top + 1.0), "rounds")

    # the middle row: schemas, the built parts, the run folder
    box(ax, 0.2, 3.5, 2.8, 1.8, "schemas", "fedlab/config/\nderived from the\nbuilders' signatures",
        CONFIG)
    arrow(ax, (1.6, 5.3), (1.6, top), "")
    ax.add_patch(FancyBboxPatch((3.5, 1.75), 6.1, 3.6, boxstyle="round,pad=0.02",
                                facecolor="white", edgecolor="#999999", linestyle="--"))
    ax.text(6.55, 5.28, "the parts, one per configuration group", ha="center", va="top",
            fontsize=8.5, style="italic")
    parts = [
        ("data", "fedlab/data/\nFederatedData"), ("task + model", "fedlab/tasks/\nfedlab/models/"),
        ("algorithm", "fedlab/algorithms/\nbuild, cohorts, ..."),
        ("aggregator", "fedlab/aggregators/\nfedlab/privacy/"),
        ("optimizers", "fedlab/optimizers/\nclient + server"),
        ("clients", "fedlab/clients/\nsampling, devices"),
        ("callbacks", "fedlab/callbacks/\nafter every round"),
        ("logger", "fedlab/loggers/\nMLflow"),
        ("executor", "fedlab/executors/\nwhere rounds run"),
    ]
    for index, (title, body) in enumerate(parts):
        col, row = index % 3, index // 3
        box(ax, 3.65 + col * 1.97, 3.95 - row * 1.07, 1.82, 0.95, title, body, PARTS, size=8.8)
    arrow(ax, (4.9, top), (4.9, 5.37), "")
    box(ax, 10.1, 2.6, 2.8, 2.7, "run folder",
        "fedlab/runs/files.py\nrun_config.yaml\nmetrics.csv\nsummary.json\n"
        "checkpoints/  model.keras\nevents.* (TensorBoard)", OUTPUT)
    arrow(ax, (11.5, top), (11.5, 5.3), "")
    ax.text(11.6, 5.5, "callbacks write", fontsize=7.5, style="italic", va="center")

    # the bottom row: the worker, the report
    box(ax, 6.8, 0.15, 2.8, 1.2, "TFF worker process", "fedlab/executors/worker.py\n"
        "isolated; runs the round", LOOP, size=9)
    arrow(ax, (8.6, 1.85), (8.6, 1.35), "")
    box(ax, 10.1, 0.15, 2.8, 1.2, "report", "python -m fedlab.report\npython -m fedlab.select\n"
        "(fedlab/report/)", OUTPUT, size=9)
    arrow(ax, (11.5, 2.6), (11.5, 1.35), "")
    ax.text(11.6, 1.95, "runs.csv, paired.csv,\nplots, report.md", fontsize=7.5, style="italic",
            va="center")
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
