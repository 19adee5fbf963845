"""``python -m fedlab.report <folder>...``: compare runs, with tables, plots and a markdown page.

Reads every run folder (one holding ``.hydra/config.yaml``) below the given folders and writes
into ``--out`` (default ``<first folder>/report``):

- ``runs.csv``: one row per run, the config choices that differ between runs as columns, and
  the fingerprints of the held-out set and partition each run used (``provenance``);
- ``rounds.csv``: one row per run and round (long format), with the same config columns;
- ``summary.csv``: runs grouped by everything but the seed, mean/std/n of each figure, whether
  the group is on the accuracy-vs-upload Pareto front, how many held-out sets it mixes;
- ``paired.csv``: for each varying factor and pair of its levels, the runs that agree on
  everything else (seed included) paired, and the mean difference with a 95 % t interval, the
  paired t-test's ``p_value``, the Holm-adjusted ``p_holm`` over every comparison of the table
  and ``significant_holm`` (``--no-correction``: per-comparison verdicts, no p columns);
  with ``--method algorithm`` the methods (each at its own tuned settings) paired by seed;
- ``eval_accuracy.png``, ``train_loss.png``, ``accuracy_vs_upload.png``: one line per group
  (mean over seeds), a band of the 95 % t interval of the mean (3 or more seeds);
- ``report.md``: all of it on one page.

``--from-runs runs.csv`` makes summary.csv, paired.csv and report.md from a runs.csv the report
wrote, without the run folders (no rounds.csv written); the plots too, from the per-round table of
the rounds.csv beside it (or ``--from-rounds rounds.csv``). ``fedlab.report.load_runs(folders)``
returns the per-round table as a pandas DataFrame, for notebooks.

``python -m fedlab.report --samples dataset=mnist`` instead draws the first 25 training images
of a data set with their class names (``samples.png``); for token sequences
(``dataset=shakespeare``) it writes them as text with their targets (``samples.txt``).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fedlab.report import collect, markdown, methods, stats
from fedlab.report.collect import ReportError
from fedlab.runs.figures import LAST_K


def make_report(folders: Sequence[Path], out: Path, target_accuracy: float,
                last_k: int = LAST_K, pooled: bool = False, *,
                method: Sequence[str] | None = None, selected: Sequence[Path] | None = None,
                correction: bool = True, runs_csv: Path | None = None,
                rounds_csv: Path | None = None) -> pd.DataFrame:
    """Write every table, plot and report.md into ``out``.

    Args:
      folders: run or multirun folders (unused with ``runs_csv``).
      out: the report folder (created).
      target_accuracy: the target of ``rounds_to_target``.
      last_k: how many last evaluations ``*_last_k`` averages.
      pooled: also compare each factor's levels pooled over the other factors' levels.
      method: config keys that name a method: pair methods, not settings.
      selected: ``fedlab.select``'s selected.csv files (with ``method``).
      correction: Holm's correction over the paired table's comparisons.
      runs_csv: a runs.csv to make the tables from instead of the run folders.
      rounds_csv: with ``runs_csv``, the rounds.csv to draw the plots from (default: the
        rounds.csv beside ``runs_csv``, if any; none: no plots).

    Returns:
      The readable summary (empty when no run completed).

    Raises:
      ReportError: no runs, a missing folder or file, an unknown ``method`` key.
    """
    if runs_csv is not None:
        runs, group_columns, seed_columns = collect.read_runs_csv(runs_csv)
        if rounds_csv is None and (runs_csv.parent / "rounds.csv").is_file():
            rounds_csv = runs_csv.parent / "rounds.csv"
        if rounds_csv is None:
            metrics, source = {}, f"Runs from `{runs_csv}` (no run folders: no plots)"
        else:
            metrics = collect.read_rounds_csv(rounds_csv, runs)
            source = (f"Runs from `{runs_csv}`, their rounds (plots) from `{rounds_csv}` "
                      "(no run folders)")
    else:
        runs, metrics, group_columns, seed_columns = collect.collect_runs(
            folders, target_accuracy, last_k)
        source = f"Runs under: {', '.join(f'`{f}`' for f in folders)}"
    pairing = methods.method_comparisons(runs, list(method), selected) if method else None
    out.mkdir(parents=True, exist_ok=True)
    if runs_csv is None:
        runs.to_csv(out / "runs.csv", index=False)
        collect.rounds_table(runs, metrics, group_columns + seed_columns).to_csv(
            out / "rounds.csv", index=False)
    summary = stats.summarize(runs, group_columns)
    summary.to_csv(out / "summary.csv", index=False)
    paired = (pairing.table if pairing is not None else
              stats.paired_comparisons(runs, group_columns, group_columns + seed_columns, pooled))
    paired = (stats.holm_correct(paired) if correction
              else paired.reindex(columns=stats.UNCORRECTED_COLUMNS))
    paired.to_csv(out / "paired.csv", index=False)
    warnings = collect.held_out_warnings(runs, group_columns)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    completed = {run: table for run, table in metrics.items()
                 if run in set(runs.loc[runs["status"] == "completed", "run"])}
    plots = []
    if completed:
        from fedlab.report import plots as plotting  # matplotlib only when there is a plot

        plots = plotting.plot_groups(runs, completed, group_columns, out)
    readable = markdown.readable_summary(summary, group_columns) if len(summary) else (
        pd.DataFrame())
    markdown.write_markdown(out, source, runs, readable, plots, target_accuracy, group_columns,
                            paired, warnings, last_k, pairing)
    return readable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fedlab.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*",
                        help="run or multirun folders (or, with --samples, config overrides)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first>/report)")
    parser.add_argument("--target-accuracy", type=float, default=0.9,
                        help="accuracy whose first reaching round is reported (default 0.9)")
    parser.add_argument("--last-k", type=int, default=LAST_K,
                        help=f"final accuracy also as the mean of the last K evaluations "
                             f"(default {LAST_K})")
    parser.add_argument("--pooled", action="store_true",
                        help="also compare each factor's levels over all pairs, pooled over "
                             "the other factors' levels (labelled so)")
    parser.add_argument("--method", metavar="KEY[,KEY]",
                        help="pair methods, not settings: a method is these keys' values plus "
                             "the settings tuned for it (e.g. algorithm); methods are paired by "
                             "seed within the remaining factors")
    parser.add_argument("--selected", type=Path, action="append", default=[],
                        metavar="SELECTED_CSV",
                        help="fedlab.select's selected.csv (repeatable): what was tuned per "
                             "method, and the setting its runs must be at; implies --method "
                             "from its per column when --method is not given")
    parser.add_argument("--no-correction", action="store_true",
                        help="no Holm correction: per-comparison intervals and verdicts only, "
                             "paired.csv without p columns")
    parser.add_argument("--from-runs", type=Path, metavar="RUNS_CSV",
                        help="make summary.csv, paired.csv and report.md from a runs.csv the "
                             "report wrote, without the run folders (no rounds.csv written); "
                             "the plots too when the report's rounds.csv is beside it")
    parser.add_argument("--from-rounds", type=Path, metavar="ROUNDS_CSV",
                        help="with --from-runs: the report's rounds.csv to draw the plots from "
                             "(default: the rounds.csv beside RUNS_CSV)")
    parser.add_argument("--samples", action="store_true",
                        help="draw 25 training images (or write 25 text sequences) of the data set "
                             "named by the overrides")
    return parser


def _method_keys(args) -> list[str] | None:
    if args.method:
        return [key.strip() for key in args.method.split(",") if key.strip()]
    if not args.selected:
        return None
    _, per = methods.read_selected(args.selected)
    if not per:
        raise ReportError("--selected without --method: these selected.csv files do not say "
                          "which keys name a method (no per column); add --method KEY")
    return per


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry.

    Args:
      argv: the arguments (default ``sys.argv[1:]``).

    Returns:
      The exit code: 0, or 1 after one ``error:`` line.
    """
    args = _parser().parse_args(argv)
    try:
        if args.samples:
            from fedlab.report.samples import draw_samples  # imports TensorFlow

            path = draw_samples(args.items, args.out or Path("."))
            print(f"wrote {path}")
            return 0
        if args.from_runs is not None and args.items:
            raise ReportError("--from-runs reads a runs.csv instead of run folders: name one "
                              "or the other")
        if args.from_rounds is not None and args.from_runs is None:
            raise ReportError("--from-rounds draws the plots of a --from-runs report: name the "
                              "runs.csv with --from-runs")
        if not args.items and args.from_runs is None:
            raise ReportError("name at least one run or multirun folder")
        folders = [Path(item) for item in args.items]
        out = args.out or (folders[0] if folders else args.from_runs.parent) / "report"
        if args.last_k < 1:
            raise ReportError(f"--last-k must be at least 1, got {args.last_k}")
        method = _method_keys(args)
        if method and args.pooled:
            raise ReportError("--pooled pools a setting's pairs over other factors; methods "
                              "(--method, --selected) are paired within each stratum only")
        readable = make_report(folders, out, args.target_accuracy, args.last_k, args.pooled,
                               method=method, selected=args.selected or None,
                               correction=not args.no_correction, runs_csv=args.from_runs,
                               rounds_csv=args.from_rounds)
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
