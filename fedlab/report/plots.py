"""The report's plots: one line per group of runs, labelled short, legends outside the axes.

Lines are the mean over a group's seeds; bands are the 95 % t interval of that mean (groups
with at least 3 seeds in the round; none from fewer), clipped to the metric's range ([0, 1] for
accuracies, >= 0 for losses). Labels hold only the config keys needed to tell the groups apart,
with the shortest unambiguous key names, and leave out keys a group does not have (nan/None).
More than 6 groups: one panel per level of a label key. Upload axes are logarithmic when the
uploads span two orders of magnitude; a loss that diverges leaves a log axis, named in the title.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from fedlab.report.collect import groups_of  # noqa: E402
from fedlab.report.stats import CONFIDENCE, MIN_PAIRS  # noqa: E402
from fedlab.runs import figures  # noqa: E402
from fedlab.runs.figures import (  # noqa: E402
    BITS_PER_MIB,
    CLIENT_COLUMNS,
    SIM_TIME,
)
from fedlab.runs.files import PERSONALIZED_FILE  # noqa: E402

BAND = f"band: {CONFIDENCE * 100:.0f} % t-interval of the mean (n ≥ {MIN_PAIRS} seeds)"
MISSING = {"nan", "None", "none", ""}
MAX_LINES = 6  # more groups than this: one panel per level of a label key
LOG_SPAN = 100  # an axis whose positive values span this factor or more is drawn on a log scale
OFF_SCALE = 1e4  # a loss above this multiple of the largest first-round loss leaves the axis


def short_keys(columns: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix that no other key of ``columns`` ends with.

    A key nested twice or more keeps at least its last two parts (``partition.method``, not
    ``method``).

    Args:
      columns: config keys, e.g. ``optimizer.client.learning_rate``.

    Returns:
      ``{key: short}``: ``client.learning_rate`` beside ``server.learning_rate``,
      ``client.momentum``, ``batch_size``.
    """
    short = {}
    for column in columns:
        parts = column.split(".")
        for size in range(min(2, len(parts) - 1) or 1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            if not any(o != column and (o == suffix or o.endswith("." + suffix))
                       for o in columns):
                break
        short[column] = suffix
    return short


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _render(firsts: pd.DataFrame, columns: list[str], names: dict[str, str]) -> list[str]:
    return [", ".join(f"{names[c]}={_value(row[c])}" for c in columns
                      if str(row[c]) not in MISSING) for _, row in firsts.iterrows()]


def label_columns(firsts: pd.DataFrame, group_columns: list[str]) -> list[str]:
    """The group columns a label needs to tell the groups apart.

    Keys are taken while they tell more groups apart: group choices (``algorithm``) first, then
    the nested keys, callbacks' last; a nested key the others make redundant is then dropped
    again (a learning rate each algorithm was tuned to adds nothing to ``algorithm=scaffold``).

    Args:
      firsts: one row per group (its first run).
      group_columns: the columns that define a group.

    Returns:
      The columns, in ``group_columns``' order.
    """
    names = short_keys(group_columns)

    def _order(columns: list[str]) -> list[str]:
        return [c for c in group_columns if c in columns]

    def _distinct(columns: list[str]) -> int:
        return len(set(_render(firsts, _order(columns), names)))

    priority = ([c for c in group_columns if "." not in c]
                + [c for c in group_columns if "." in c and not c.startswith("callbacks.")]
                + [c for c in group_columns if c.startswith("callbacks.")])
    kept = []
    for column in priority:
        if _distinct(kept) == len(firsts):
            break
        if _distinct(kept + [column]) > _distinct(kept):
            kept.append(column)
    for column in reversed(kept):
        rest = [c for c in kept if c != column]
        labels = _render(firsts, _order(rest), names)
        if "." in column and all(labels) and len(set(labels)) == len(labels):
            kept = rest
    return _order(kept)


def short_labels(firsts: pd.DataFrame, group_columns: list[str]) -> list[str]:
    """A label per group with only the keys that tell the groups apart (:func:`label_columns`).

    A group's nan or None values are left out.

    Args:
      firsts: one row per group (its first run).
      group_columns: the columns that define a group.

    Returns:
      The labels, in ``firsts``' order (``all runs`` for a single group).
    """
    columns = label_columns(firsts, group_columns)
    return [text or "all runs" for text in _render(firsts, columns, short_keys(group_columns))]


def _labelled_groups(runs: pd.DataFrame, group_columns: list[str]):
    groups = [(key, members) for key, members in groups_of(runs, group_columns)]
    firsts = pd.DataFrame([members.iloc[0] for _, members in groups])
    return list(zip(short_labels(firsts, group_columns), (m for _, m in groups), strict=True))


def facets(firsts: pd.DataFrame, group_columns: list[str]) -> tuple[list[str], list[str]]:
    """With more than ``MAX_LINES`` groups, one panel per level of a label key.

    The key (2 to 4 levels) is the one that leaves the fewest settings to tell apart (a key
    crossed with the others: the same lines in every panel), then the fewest lines in the
    fullest panel; the lines are labelled by the other keys, so a setting has the same label
    in every panel.

    Args:
      firsts: one row per group (its first run).
      group_columns: the columns that define a group.

    Returns:
      ``(panels, labels)``: each group's panel title (``""``: one panel) and line label.
    """
    columns = label_columns(firsts, group_columns)
    names = short_keys(group_columns)
    best = None
    if len(firsts) > MAX_LINES:
        for column in columns:
            levels = firsts[column].astype(str)
            settings = len(set(_render(firsts, [c for c in columns if c != column], names)))
            score = (settings, levels.value_counts().max())
            if 2 <= levels.nunique() <= 4 and (best is None or score < best[0]):
                best = (score, column)
    if best is None:
        return [""] * len(firsts), short_labels(firsts, group_columns)
    facet = best[1]
    panels = [f"{names[facet]}={_value(v)}" for v in firsts[facet]]
    labels = _render(firsts, [c for c in columns if c != facet], names)
    return panels, [text or "all runs" for text in labels]


def mean_band(values: pd.DataFrame, x: str, y: str, low: float | None, high: float | None
              ) -> pd.DataFrame:
    """Per round: the mean of ``x`` and ``y`` over runs, and the band of ``y``'s mean.

    Args:
      values: rows of several runs, with ``round``, ``x`` and ``y``.
      x: the x column (averaged over runs per round).
      y: the y column.
      low: the metric's lower bound (clip), or ``None``.
      high: its upper bound, or ``None``.

    Returns:
      ``x, mean, low, high, n`` per round; ``low`` and ``high`` NaN where fewer than 3 runs
      have the round.
    """
    series = values.dropna(subset=[y]).groupby("round").agg(
        x=(x, "mean"), mean=(y, "mean"), std=(y, "std"), n=(y, "count"))
    n = series["n"].where(series["n"] >= MIN_PAIRS)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * series["std"] / np.sqrt(n)
    series["low"] = (series["mean"] - half).clip(lower=low, upper=high)
    series["high"] = (series["mean"] + half).clip(lower=low, upper=high)
    return series


def _finish(fig, axes, path: Path, xlabel: str, ylabel: str, title: str,
            panel_titles: list[str] | None = None) -> str:
    """Label, put one legend outside the axes, save as ``path``; returns its file name.

    ``axes`` is one axes or a row of panels (titled ``panel_titles``, ``title`` above them);
    a label drawn in several panels is listed once.
    """
    panels = list(np.atleast_1d(axes))
    for index, panel in enumerate(panels):
        panel.set_xlabel(xlabel)
        panel.grid(True, alpha=0.3)
        if panel_titles:
            panel.set_title(panel_titles[index], fontsize=10)
        if xlabel == "round":
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    panels[0].set_ylabel(ylabel)
    if panel_titles:
        fig.suptitle(title, fontsize=10)
    else:
        panels[0].set_title(title, fontsize=10)
    handles = {}
    for panel in panels:
        for handle, text in zip(*panel.get_legend_handles_labels(), strict=True):
            handles.setdefault(text, handle)
    if handles:
        panels[-1].legend(handles.values(), handles.keys(), fontsize=8, loc="upper left",
                          bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _positive(axes) -> np.ndarray:
    """The lines' finite positive y values (of every panel)."""
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float)
                             for panel in np.atleast_1d(axes) for line in panel.get_lines()]
                            or [[]])
    return values[np.isfinite(values) & (values > 0)]


def _wide(axes) -> bool:
    """Whether the lines' positive values span more than 3 orders of magnitude."""
    values = _positive(axes)
    return len(values) > 0 and values.max() > 1e3 * values.min()


def _log_loss_axis(panels, ylabel: str) -> tuple[str, str]:
    """A log y axis for losses spanning orders of magnitude; lines far above it noted.

    Returns:
      The y label and a note for the title (``""`` when every line fits).
    """
    values = _positive(panels)  # a diverged run's loss would flatten every other line
    firsts = [float(line.get_ydata()[0]) for panel in panels for line in panel.get_lines()
              if len(line.get_ydata())]
    top = values.max() * 3
    note = ""
    if firsts and values.max() > OFF_SCALE * max(firsts):
        top = OFF_SCALE * max(firsts)
        above = sorted({line.get_label().rsplit(" (n=", 1)[0] for panel in panels
                        for line in panel.get_lines()
                        if np.nanmax(np.asarray(line.get_ydata(), dtype=float)) > top})
        note = (f"\nabove the axis (> {OFF_SCALE:g} x the first round's loss, up to "
                f"{values.max():.1e}): {'; '.join(above)}")
    for panel in panels:
        panel.set_yscale("log")
        panel.set_ylim(values.min() / 3, top)  # bands reaching 0 meet the edge
    return ylabel + " (log scale)", note


def plot_groups(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame], group_columns: list[str],
                out: Path) -> list[str]:
    """Draw the comparison plots of the completed runs.

    Always ``eval_accuracy.png``, ``train_loss.png`` and ``accuracy_vs_upload.png``; with DP
    runs ``accuracy_vs_epsilon.png``, with simulated clients ``accuracy_vs_sim_time.png``, with
    client-level evaluation ``client_accuracy.png``, with personalization
    ``personalized_accuracy.png``. With more than ``MAX_LINES`` groups the first three have
    one panel per level of a label key (:func:`facets`).

    Args:
      runs: one row per run.
      metrics: each completed run's metrics table, by run folder.
      group_columns: the columns that define a group.
      out: the folder to write into.

    Returns:
      The file names written.
    """
    completed = runs[runs["status"] == "completed"]
    groups = _labelled_groups(completed, group_columns)
    firsts = pd.DataFrame([members.iloc[0] for _, members in groups])
    panel_of, line_labels = facets(firsts, group_columns)
    panel_titles = list(dict.fromkeys(panel_of))
    settings = list(dict.fromkeys(line_labels))  # one colour and style per setting
    sizes = {label: sorted({len(m) for (_, m), text in zip(groups, line_labels, strict=True)
                            if text == label}) for label in settings}
    banded = any(len(members) >= MIN_PAIRS for _, members in groups)
    how = f"mean over seeds; {BAND}" if banded else "mean over seeds (no band: < 3 seeds)"
    specs = [
        ("eval_accuracy.png", "round", "eval_accuracy", "round", "held-out accuracy", (0, 1)),
        ("train_loss.png", "round", "train_loss", "round", "training loss (clients' mean)",
         (0, None)),
        ("accuracy_vs_upload.png", "uploaded_MiB", "eval_accuracy",
         "cumulative upload, all clients (MiB)", "held-out accuracy", (0, 1)),
    ]
    width = 8 if len(panel_titles) == 1 else 5 * len(panel_titles)
    figures = {name: plt.subplots(1, len(panel_titles), figsize=(width, 4.5), sharey=True,
                                  squeeze=False) for name, *_ in specs}
    styles = ["-", "--", ":", "-."]
    uploads = []
    for (_, members), panel_title, setting in zip(groups, panel_of, line_labels, strict=True):
        index = settings.index(setting)
        color, style = f"C{index % 10}", styles[index % len(styles)]
        sizes_text = "–".join(str(n) for n in (sizes[setting][0], sizes[setting][-1]))
        legend = f"{setting} (n={sizes[setting][0] if len(sizes[setting]) == 1 else sizes_text})"
        tables = []
        for run in members["run"]:
            table = metrics[run].copy()
            table["uploaded_MiB"] = table["bits_up_cumulative"] / BITS_PER_MIB
            tables.append(table)
        stacked = pd.concat(tables)
        for name, x, y, _, _, (low, high) in specs:
            series = mean_band(stacked, x, y, low, high)
            axes = figures[name][1][0][panel_titles.index(panel_title)]
            if x == "uploaded_MiB" and not (series["x"] > 0).any():
                # Nothing uploaded (mode=central): a reference line at its final accuracy.
                axes.axhline(series["mean"].iloc[-1], color="gray", linestyle=style,
                             label=f"{legend[:-1]}, no upload: final accuracy)")
                continue
            if x == "uploaded_MiB":
                uploads.extend(series["x"][series["x"] > 0])
            axes.plot(series["x"], series["mean"], style, color=color, label=legend)
            axes.fill_between(series["x"], series["low"], series["high"], color=color,
                              alpha=0.2, linewidth=0)
    titles = panel_titles if len(panel_titles) > 1 else None
    for name, _, y, xlabel, ylabel, _ in specs:
        fig, axes = figures[name]
        panels = list(axes[0])
        if name == "accuracy_vs_upload.png" and uploads and max(uploads) >= LOG_SPAN * min(
                uploads):
            for panel in panels:
                panel.set_xscale("log")
        title = f"{ylabel}: {how}"
        if "loss" in y and _wide(panels):
            ylabel, note = _log_loss_axis(panels, ylabel)
            title += note
        _finish(fig, panels if titles else panels[0], out / name, xlabel, ylabel, title, titles)
    names = [name for name, *_ in specs]
    if any("dp_epsilon" in metrics[run] for run in completed["run"]):
        names.append(plot_accuracy_vs_epsilon(groups, metrics, out))
    if any(SIM_TIME in metrics[run] for run in completed["run"]):
        names.append(plot_accuracy_vs_sim_time(groups, metrics, out))
    if any(set(CLIENT_COLUMNS) <= set(metrics[run]) for run in completed["run"]):
        names.append(plot_client_accuracy(groups, metrics, out, how))
    if any((Path(run) / PERSONALIZED_FILE).exists() for run in completed["run"]):
        names.append(plot_personalized(groups, out))
    return names


def plot_personalized(groups: list[tuple[str, pd.DataFrame]], out: Path) -> str:
    """Per client of the final model: global vs personalized accuracy, one panel per group.

    Every seed's clients are points; above the diagonal, fine-tuning helped.

    Args:
      groups: ``(label, runs)`` per group.
      out: the folder to write into.

    Returns:
      ``personalized_accuracy.png``.
    """
    groups = [(label, pd.concat([figures.read_table(Path(run) / PERSONALIZED_FILE)
                                 for run in members["run"]
                                 if (Path(run) / PERSONALIZED_FILE).exists()]))
              for label, members in groups
              if any((Path(run) / PERSONALIZED_FILE).exists() for run in members["run"])]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 4.3), squeeze=False,
                             sharex=True, sharey=True)
    for panel, (label, clients) in zip(axes[0], groups, strict=True):
        panel.scatter(clients["accuracy"], clients["personalized_accuracy"], s=8, alpha=0.5)
        panel.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        helped = (clients["personalized_accuracy"] > clients["accuracy"]).mean()
        panel.set_title(f"{label}\n{len(clients)} client-runs, {helped:.0%} above the diagonal",
                        fontsize=8)
        panel.set_xlabel("global model's accuracy on the client")
        panel.set_xlim(-0.02, 1.02)
        panel.set_ylim(-0.02, 1.02)
        panel.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("after fine-tuning on the client")
    fig.tight_layout()
    fig.savefig(out / "personalized_accuracy.png", dpi=120)
    plt.close(fig)
    return "personalized_accuracy.png"


def plot_accuracy_vs_epsilon(groups: list[tuple[str, pd.DataFrame]],
                             metrics: dict[str, pd.DataFrame], out: Path) -> str:
    """Held-out accuracy against the privacy spent (epsilon at the run's delta), DP runs only.

    Args:
      groups: ``(label, runs)`` per group.
      metrics: each run's metrics table.
      out: the folder to write into.

    Returns:
      ``accuracy_vs_epsilon.png``.
    """
    fig, axes = plt.subplots(figsize=(8, 4.5))
    for label, members in groups:
        tables = [metrics[run] for run in members["run"] if "dp_epsilon" in metrics[run]]
        if not tables:
            continue
        stacked = pd.concat(tables).replace([np.inf, -np.inf], np.nan)  # no noise: no epsilon
        series = (stacked.dropna(subset=["eval_accuracy", "dp_epsilon"])
                  .groupby("round")[["dp_epsilon", "eval_accuracy"]].mean())
        if series.empty:
            continue
        axes.plot(series["dp_epsilon"], series["eval_accuracy"],
                  label=f"{label} (n={len(tables)})")
    return _finish(fig, axes, out / "accuracy_vs_epsilon.png",
                   "epsilon spent (client level, RDP)", "held-out accuracy",
                   "held-out accuracy vs privacy spent (mean over seeds, no band)")


def plot_accuracy_vs_sim_time(groups: list[tuple[str, pd.DataFrame]],
                              metrics: dict[str, pd.DataFrame], out: Path) -> str:
    """Held-out accuracy against simulated wall-clock time, runs with simulated clients only.

    Each run is drawn on its own (rounds end at different simulated times in different seeds),
    one colour per group.

    Args:
      groups: ``(label, runs)`` per group.
      metrics: each run's metrics table.
      out: the folder to write into.

    Returns:
      ``accuracy_vs_sim_time.png``.
    """
    fig, axes = plt.subplots(figsize=(8, 4.5))
    for index, (label, members) in enumerate(groups):
        tables = [metrics[run] for run in members["run"] if SIM_TIME in metrics[run]]
        color = f"C{index % 10}"
        legend = f"{label} (n={len(tables)})"
        for table in tables:
            series = table.dropna(subset=["eval_accuracy"])
            axes.plot(series[SIM_TIME], series["eval_accuracy"], color=color, alpha=0.8,
                      label=legend)
            legend = None
    return _finish(fig, axes, out / "accuracy_vs_sim_time.png",
                   "simulated time (s): slowest reporting client per round, summed",
                   "held-out accuracy", "held-out accuracy vs simulated time (one line per run)")


def plot_client_accuracy(groups: list[tuple[str, pd.DataFrame]],
                         metrics: dict[str, pd.DataFrame], out: Path, how: str) -> str:
    """Client-level accuracy per round, mean over clients and 10th percentile, side by side.

    Args:
      groups: ``(label, runs)`` per group.
      metrics: each run's metrics table.
      out: the folder to write into.
      how: what the lines and bands are (for the title).

    Returns:
      ``client_accuracy.png``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for label, members in groups:
        tables = [metrics[run] for run in members["run"] if set(CLIENT_COLUMNS) <= set(
            metrics[run])]
        if not tables:
            continue
        stacked = pd.concat(tables).dropna(subset=list(CLIENT_COLUMNS))
        for panel, column in zip(axes, CLIENT_COLUMNS, strict=True):
            series = mean_band(stacked, "round", column, 0, 1)
            line, = panel.plot(series.index, series["mean"], label=f"{label} (n={len(tables)})")
            panel.fill_between(series.index, series["low"], series["high"],
                               color=line.get_color(), alpha=0.2, linewidth=0)
    for panel, title in zip(axes, ("mean over clients", "10th percentile of clients"),
                            strict=True):
        panel.set_title(f"client-level accuracy: {title}", fontsize=10)
        panel.set_xlabel("round")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy on the clients' own held-out examples")
    fig.suptitle(how, fontsize=9)
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.savefig(out / "client_accuracy.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return "client_accuracy.png"
