"""``python -m fedlab.report <folder>...``: compare runs, with tables, plots and a markdown page.

Reads every run folder (one holding ``.hydra/config.yaml``) below the given folders and writes
into ``--out`` (default ``<first folder>/report``):

- ``runs.csv``: one row per run, the config choices that differ between runs as columns;
- ``summary.csv``: runs grouped by everything but the seed, mean/std/n of each figure;
- ``eval_accuracy.png``, ``train_loss.png``, ``accuracy_vs_upload.png``: one line per group,
  a band of +-1 std over seeds;
- ``report.md``: all of it on one page.

``python -m fedlab.report --samples dataset=mnist`` instead draws the first 25 training images
of a data set with their class names (``samples.png``).
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

RUN_MARKER = Path(".hydra") / "config.yaml"
REQUIRED_COLUMNS = ("round", "train_loss", "eval_accuracy", "eval_loss", "bits_up_cumulative")
SEED_KEYS = ("schedule.seed",)
FIGURES = ("final_eval_accuracy", "best_eval_accuracy", "final_eval_loss", "rounds_to_target",
           "uploaded_MiB", "training_seconds")
BITS_PER_MIB = 8 * 2**20


class ReportError(Exception):
    """The report cannot be made (no runs, missing folder)."""


def find_runs(folders: Sequence[Path]) -> list[Path]:
    """Every run folder at or below ``folders``."""
    runs = set()
    for folder in folders:
        if not folder.is_dir():
            raise ReportError(f"{folder} is not a folder")
        runs.update(marker.parent.parent for marker in folder.rglob(str(RUN_MARKER)))
    if not runs:
        raise ReportError(
            "no fedlab runs (folders holding .hydra/config.yaml) under "
            + ", ".join(str(f) for f in folders)
        )
    return sorted(runs)


def _read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _run_config(run_dir: Path) -> dict:
    """Group choices plus every config value, flattened to dotted keys."""
    config = pd.json_normalize(_read_yaml(run_dir / RUN_MARKER), sep=".").iloc[0].to_dict()
    choices = _read_yaml(run_dir / ".hydra" / "hydra.yaml").get("hydra", {})
    choices = choices.get("runtime", {}).get("choices", {})
    config.update({g: o for g, o in choices.items() if not g.startswith("hydra/") and o})
    config.pop("run_dir", None)
    return config


def _status(metrics: pd.DataFrame | None, summary: dict) -> tuple[str, str]:
    if summary.get("status") == "failed":
        return "failed", summary.get("error", "")
    if metrics is None or metrics.empty:
        return "incomplete", "no finished round"
    missing = [c for c in REQUIRED_COLUMNS if c not in metrics.columns]
    if missing:
        return "incomplete", f"metrics.csv lacks {', '.join(missing)}"
    if summary.get("status") != "completed":
        return "incomplete", f"stopped after round {int(metrics['round'].max())}"
    return "completed", ""


def load_run(run_dir: Path, target_accuracy: float) -> tuple[dict, pd.DataFrame | None]:
    """One row of figures for ``run_dir`` and its metrics table (``None`` if unreadable)."""
    metrics_path = run_dir / "metrics.csv"
    try:
        metrics = pd.read_csv(metrics_path) if metrics_path.exists() else None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        metrics = None
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except (ValueError, OSError):
        summary = {}
    status, note = _status(metrics, summary)
    row = {"run": str(run_dir), "status": status, "note": note, **_run_config(run_dir)}
    if status != "incomplete" or (metrics is not None and set(REQUIRED_COLUMNS) <= set(metrics)):
        if metrics is not None and not metrics.empty:
            evaluated = metrics.dropna(subset=["eval_accuracy"])
            last = evaluated.iloc[-1] if len(evaluated) else pd.Series(dtype=float)
            reached = evaluated[evaluated["eval_accuracy"] >= target_accuracy]
            row.update(
                rounds_completed=int(metrics["round"].max()),
                final_eval_accuracy=last.get("eval_accuracy", np.nan),
                best_eval_accuracy=evaluated["eval_accuracy"].max(),
                final_eval_loss=last.get("eval_loss", np.nan),
                rounds_to_target=int(reached["round"].iloc[0]) if len(reached) else np.nan,
                bits_up_total=int(metrics["bits_up_cumulative"].iloc[-1]),
                bits_down_total=int(metrics.get("bits_down_cumulative", pd.Series([0])).iloc[-1]),
                uploaded_MiB=metrics["bits_up_cumulative"].iloc[-1] / BITS_PER_MIB,
                training_seconds=float(metrics.get("round_seconds", pd.Series([np.nan])).sum()),
            )
    return row, metrics if status == "completed" else None


def varying_columns(runs: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs and is not implied by a group choice."""
    figures = {"run", "status", "note", "rounds_completed", "bits_up_total", "bits_down_total",
               *FIGURES}
    candidates = [c for c in runs.columns if c not in figures]
    varying = [c for c in candidates if runs[c].astype(str).nunique() > 1]
    groups = {c for c in varying if "." not in c}
    kept = []
    for column in varying:
        group = column.split(".", 1)[0]
        if column.endswith(("._target_", "._partial_")):
            continue
        if "." in column and group in groups:
            if runs.groupby(group)[column].apply(lambda s: s.astype(str).nunique()).max() <= 1:
                continue  # set by the group option itself
        kept.append(column)
    return sorted(kept, key=lambda c: ("." in c, c))


def summarize(runs: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """Mean, std and count of every figure over the completed runs of each group."""
    completed = runs[runs["status"] == "completed"]
    if completed.empty:
        return pd.DataFrame()
    keys = group_columns or (lambda _: "all runs")
    table = completed.groupby(keys, dropna=False)[list(FIGURES)].agg(["mean", "std", "count"])
    table.columns = [f"{figure}_{stat}" for figure, stat in table.columns]
    table = table.rename(columns={"final_eval_accuracy_count": "n"})
    table = table.drop(columns=[c for c in table.columns if c.endswith("_count")])
    return table.reset_index().rename(columns={"index": "group"})


def _label(row: pd.Series, group_columns: list[str]) -> str:
    return ", ".join(f"{c}={row[c]}" for c in group_columns) or "all runs"


def plot_groups(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame], group_columns: list[str],
                out: Path) -> list[str]:
    """Draw the three comparison plots; returns their file names."""
    completed = runs[runs["status"] == "completed"]
    groups = (completed.groupby(group_columns, dropna=False) if group_columns
              else [("all runs", completed)])
    specs = [
        ("eval_accuracy.png", "round", "eval_accuracy", "round", "held-out accuracy"),
        ("train_loss.png", "round", "train_loss", "round", "training loss (clients' mean)"),
        ("accuracy_vs_upload.png", "uploaded_MiB", "eval_accuracy",
         "cumulative upload, all clients (MiB)", "held-out accuracy"),
    ]
    figures = {name: plt.subplots(figsize=(8, 5)) for name, *_ in specs}
    styles = ["-", "--", ":", "-."]
    for index, (_, members) in enumerate(groups):
        label = _label(members.iloc[0], group_columns)
        tables = []
        for run in members["run"]:
            table = metrics[run].copy()
            table["uploaded_MiB"] = table["bits_up_cumulative"] / BITS_PER_MIB
            tables.append(table)
        stacked = pd.concat(tables)
        for name, x, y, _, _ in specs:
            series = stacked.dropna(subset=[y]).groupby("round").agg(
                x=(x, "mean"), mean=(y, "mean"), std=(y, "std"))
            axes = figures[name][1]
            line, = axes.plot(series["x"], series["mean"], styles[index % len(styles)],
                              label=f"{label} (n={len(tables)})")
            if len(tables) > 1:
                axes.fill_between(series["x"], series["mean"] - series["std"].fillna(0),
                                  series["mean"] + series["std"].fillna(0),
                                  color=line.get_color(), alpha=0.2)
    for name, _, _, xlabel, ylabel in specs:
        fig, axes = figures[name]
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(f"{ylabel} (mean, band: ±1 std over seeds)")
        if name == "accuracy_vs_upload.png":
            axes.set_xscale("log")
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
    return [name for name, *_ in specs]


def _mean_std(summary: pd.DataFrame, figure: str, digits: int) -> pd.Series:
    mean, std = summary[f"{figure}_mean"], summary[f"{figure}_std"]
    return mean.map(lambda m: f"{m:.{digits}f}" if pd.notna(m) else "—") + std.map(
        lambda s: f" ± {s:.{digits}f}" if pd.notna(s) else "")


def readable_summary(summary: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """The summary as 'mean ± std' strings, for printing and markdown."""
    table = summary[group_columns or ["group"]].copy()
    table["final eval acc"] = _mean_std(summary, "final_eval_accuracy", 4)
    table["best eval acc"] = _mean_std(summary, "best_eval_accuracy", 4)
    table["final eval loss"] = _mean_std(summary, "final_eval_loss", 4)
    table["uploaded MiB"] = _mean_std(summary, "uploaded_MiB", 1)
    table["rounds to target"] = _mean_std(summary, "rounds_to_target", 1)
    table["train s"] = _mean_std(summary, "training_seconds", 1)
    table["n"] = summary["n"].astype(int)
    return table


def make_report(folders: Sequence[Path], out: Path, target_accuracy: float) -> pd.DataFrame:
    """Write runs.csv, summary.csv, the plots and report.md into ``out``; return the summary."""
    rows, metrics = [], {}
    for run_dir in find_runs(folders):
        row, table = load_run(run_dir, target_accuracy)
        rows.append(row)
        if table is not None:
            metrics[row["run"]] = table
    runs = pd.DataFrame(rows)
    for figure in FIGURES:
        if figure not in runs:
            runs[figure] = np.nan
    group_columns = [c for c in varying_columns(runs) if c not in SEED_KEYS]
    seed_columns = [c for c in SEED_KEYS if c in runs and runs[c].astype(str).nunique() > 1]
    out.mkdir(parents=True, exist_ok=True)
    columns = ["run", "status", *group_columns, *seed_columns, "rounds_completed", *FIGURES,
               "bits_up_total", "bits_down_total", "note"]
    runs = runs.reindex(columns=columns)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs, group_columns)
    summary.to_csv(out / "summary.csv", index=False)
    plots = plot_groups(runs, metrics, group_columns, out) if metrics else []
    readable = readable_summary(summary, group_columns) if len(summary) else pd.DataFrame()
    _write_markdown(out, folders, runs, readable, plots, target_accuracy, group_columns)
    return readable


def _write_markdown(out: Path, folders, runs: pd.DataFrame, readable: pd.DataFrame,
                    plots: list[str], target_accuracy: float, group_columns: list[str]) -> None:
    lines = ["# fedlab report", "",
             f"Runs under: {', '.join(f'`{f}`' for f in folders)}. "
             f"{(runs['status'] == 'completed').sum()} completed of {len(runs)}. "
             f"Accuracy is measured on held-out data; 'rounds to target' is the first round "
             f"with eval accuracy >= {target_accuracy}. Mean ± std over seeds.", ""]
    if len(readable):
        lines += ["## Summary", "", readable.to_markdown(index=False), ""]
    lines += [f"![{p}]({p})" for p in plots] + [""]
    shown = ["run", "status", *group_columns, "final_eval_accuracy", "uploaded_MiB", "note"]
    shown = [c for c in shown if c in runs]
    lines += ["## Runs", "", runs[shown].to_markdown(index=False, floatfmt=".4f"), ""]
    (out / "report.md").write_text("\n".join(lines))


def draw_samples(overrides: Sequence[str], out: Path) -> Path:
    """Draw the first 25 training images of the composed data set with their class names."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fedlab.config import register_schemas

    register_schemas()
    conf_dir = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    data = instantiate(cfg.dataset)
    examples = []
    for client_id in data.train.client_ids:
        for element in data.train.create_tf_dataset_for_client(client_id):
            examples.append((element["x"].numpy(), int(element["y"])))
            if len(examples) == 25:
                break
        if len(examples) == 25:
            break
    fig = plt.figure(figsize=(8, 8))
    for index, (image, label) in enumerate(examples):
        axes = fig.add_subplot(5, 5, index + 1)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        axes.set_xlabel(data.class_names[label])
    fig.suptitle(f"first {len(examples)} training images: {cfg.dataset._target_}")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "samples.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m fedlab.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*",
                        help="run or multirun folders (or, with --samples, config overrides)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first>/report)")
    parser.add_argument("--target-accuracy", type=float, default=0.9,
                        help="accuracy whose first reaching round is reported (default 0.9)")
    parser.add_argument("--samples", action="store_true",
                        help="draw 25 training images of the data set named by the overrides")
    args = parser.parse_args(argv)
    try:
        if args.samples:
            path = draw_samples(args.items, args.out or Path("."))
            print(f"wrote {path}")
            return 0
        if not args.items:
            raise ReportError("name at least one run or multirun folder")
        folders = [Path(item) for item in args.items]
        out = args.out or folders[0] / "report"
        readable = make_report(folders, out, args.target_accuracy)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if len(readable):
        print(readable.to_markdown(index=False))
    else:
        print("no completed runs to summarise")
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
