"""``python -m fedlab.select <folder>... --per algorithm``: each method's setting, on validation.

The output is the overrides that rerun each selected setting on the test seeds.

Reads every run below the folders (as ``fedlab.report`` does). The runs must have a validation
set (``dataset.validation_fraction`` > 0): selection never reads the test set. Within each level
of the ``--per`` factors, the settings (the other varying config values, seeds excepted) are
ranked by ``final_val_accuracy_last_k`` (the mean of the last ``--last-k`` validation
evaluations), or with ``--score val_rounds_to_target --target-accuracy A`` by the first round
validation accuracy reaches A (fewer first; ties, and settings that miss A in some seed, by the
former: those rank after every setting that reached it, and a level where none did is noted),
averaged over seeds when a setting ran on several; failed or diverged runs rank last. Writes
into ``--out`` (default ``<first folder>/selection``):

- ``candidates.csv``: every setting with its validation score, seeds and rank within its level;
- ``selected.csv``: the best setting per level, the runner-up's score, which tuned values lie
  on the edge of the grid tried (the optimum may lie outside it), and the ``--per`` keys
  (``per``: ``python -m fedlab.report --selected selected.csv`` pairs those methods by seed);
- ``selected_overrides.txt``: per level, the selected run's command-line overrides (from its
  ``.hydra/overrides.yaml``) without its seed and ``+experiment``, to run on the test seeds::

      while read -r overrides; do
        python -m fedlab -m +experiment=algorithms $overrides
      done < multirun/algorithms/tuning/selection/selected_overrides.txt
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fedlab.report.collect import SEED_KEYS, ReportError, find_runs, load_run, varying_columns
from fedlab.runs.figures import LAST_K

SCORE = "final_val_accuracy_last_k"
# Scores --score accepts; rounds to the target accuracy rank fewer first.
SCORES = (SCORE, "val_rounds_to_target")
LOWER_IS_BETTER = ("val_rounds_to_target",)


def rerun_overrides(run_dir: Path, averaged: Sequence[str] = ()) -> list[str]:
    """The run's command-line overrides (Hydra's ``overrides.yaml``), seed and experiment dropped.

    The test runs give their own seeds and ``+experiment``.

    Args:
      run_dir: the selected run's folder.
      averaged: keys the selection averaged over (dropped too: the test runs sweep them).

    Returns:
      The overrides, in the order the run was given them.
    """
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    dropped = tuple(f"{key}=" for key in (*SEED_KEYS, *averaged)) + (
        "+experiment=", "experiment=", "hydra.")
    return [o for o in overrides if not o.lstrip("+~").startswith(dropped)
            and not o.startswith(dropped)]


def candidates(runs: pd.DataFrame, per: list[str], tuned: list[str],
               score: str = SCORE) -> pd.DataFrame:
    """Each setting (``per`` level + ``tuned`` values): mean validation score, seeds, rank.

    Higher scores rank first, except rounds to a target (``val_rounds_to_target``: fewer
    first, ties broken by ``final_val_accuracy_last_k``).

    Args:
      runs: one row per tuning run.
      per: the factors a setting is chosen within (``algorithm``).
      tuned: the other varying config columns.
      score: the column that ranks the settings (one of :data:`SCORES`).

    Returns:
      One row per setting: its values, first run, mean score over seeds, seeds, completed
      runs and rank within its ``per`` level.
    """
    keys = per + tuned
    completed = runs["status"] == "completed"
    table = runs.assign(_score=runs[score].where(completed),
                        _accuracy=runs[SCORE].where(completed))
    text = table[keys].astype(str)
    grouped = table.groupby([text[k] for k in keys], sort=False, dropna=False)
    rows = []
    for _, members in grouped:
        first = members.iloc[0]
        rows.append({**{k: first[k] for k in keys}, "run": first["run"],
                     # a setting with a failed seed ranks last (NaN), not on its lucky seeds
                     score: members["_score"].mean(skipna=False),
                     **({SCORE: members["_accuracy"].mean(skipna=False)} if score != SCORE
                        else {}),
                     "seeds": len(members),
                     "completed": int((members["status"] == "completed").sum())})
    table = pd.DataFrame(rows)
    # one number per setting, higher is better; NaN (failed, or a target not reached) last
    merit = -table[score] if score in LOWER_IS_BETTER else table[score]
    if score != SCORE:
        # ties on rounds, and settings that missed the target (below every one that reached
        # it: rounds never near 1e6), by accuracy; the 1e-6 weight never outweighs a round
        merit = merit.fillna(-1e6) + 1e-6 * table[SCORE].clip(0, 1)
    merit = merit.fillna(-np.inf)
    level = [table[k].astype(str) for k in per] if per else np.zeros(len(table))
    table["rank"] = merit.groupby(level).rank(ascending=False, method="min").astype(int)
    return table.sort_values([*per, "rank"], kind="stable").reset_index(drop=True)


def select(runs: pd.DataFrame, group_columns: list[str], per: list[str],
           score: str = SCORE, average_over: Sequence[str] = ()
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best setting within each level of ``per`` by ``score``, with the overrides to rerun it.

    Args:
      runs: one row per tuning run.
      group_columns: the varying config columns, seeds excluded.
      per: the factors a setting is chosen within.
      score: the column that ranks the settings.
      average_over: factors a setting's score is averaged over, as over seeds (e.g. the
        partitions it was tuned on), with every column they determine.

    Returns:
      ``(selected, candidates)``: one row per level (``selected.csv``) and every setting
      ranked (``candidates.csv``).

    Raises:
      ReportError: no validation figures, a ``per`` factor that does not vary, or a level
        without a completed run.
    """
    unknown = [p for p in per if p not in runs]
    if unknown:
        raise ReportError(f"--per {', '.join(unknown)}: not a config value of these runs "
                          f"(those that vary: {', '.join(group_columns) or 'none'})")
    if runs[SCORE].isna().all():
        raise ReportError("selection reads the validation set and these runs have none "
                          "(no val_accuracy in metrics.csv): run them with "
                          "dataset.validation_fraction > 0")
    unknown = [a for a in average_over if a not in runs]
    if unknown:
        raise ReportError(f"--average-over {', '.join(unknown)}: not a config value of these "
                          f"runs (those that vary: {', '.join(group_columns) or 'none'})")
    averaged = list(average_over)
    if averaged:  # with the columns they determine (a partition's method, its parameters)
        by_level = runs.assign(**{c: runs[c].astype(str) for c in group_columns}).groupby(
            [runs[a].astype(str) for a in averaged])
        averaged += [c for c in group_columns if c not in averaged and c not in per
                     and by_level[c].nunique().max() == 1]
    tuned = [c for c in group_columns if c not in per and c not in averaged]
    table = candidates(runs, per, tuned, score)
    chosen = []
    for _, level in table.groupby([table[p].astype(str) for p in per] if per else
                                  np.zeros(len(table)), sort=False):
        best = level.iloc[0]
        if np.isnan(best[SCORE]):
            label = ", ".join(f"{p}={best[p]}" for p in per)
            raise ReportError(f"{label}: no completed run to select from")
        missed = score in LOWER_IS_BETTER and np.isnan(best[score])
        # Values constant within the level (another method's own option) are part of its
        # setting; values that vary within it are what was tuned.
        searched = [c for c in tuned if level[c].astype(str).nunique() > 1]
        edges = [c for c in searched if _on_edge(level[c], best[c])]
        runner_up = level[score].iloc[1] if len(level) > 1 else np.nan
        chosen.append({**{c: best[c] for c in per + tuned}, score: best[score],
                       **({SCORE: best[SCORE]} if score != SCORE else {}),
                       "runner_up_" + score: runner_up, "settings_tried": len(level),
                       "seeds_per_setting": int(level["seeds"].max()),
                       "on_grid_edge": " ".join(edges),
                       "note": (f"no setting reached the target in every seed: chosen by "
                                f"{SCORE}" if missed else ""),
                       "per": " ".join(per),
                       "averaged_over": " ".join(average_over),
                       "overrides": " ".join(rerun_overrides(Path(best["run"]), average_over))})
    return pd.DataFrame(chosen), table


def _on_edge(values: pd.Series, chosen) -> bool:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or numeric.nunique() < 3:
        return False
    return float(chosen) in (numeric.min(), numeric.max())


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry.

    Args:
      argv: the arguments (default ``sys.argv[1:]``).

    Returns:
      The exit code: 0, or 1 after one ``error:`` line.
    """
    parser = argparse.ArgumentParser(prog="python -m fedlab.select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="the tuning runs' folders")
    parser.add_argument("--per", action="append", default=[],
                        help="select one setting per level of this factor (repeatable), "
                             "e.g. algorithm")
    parser.add_argument("--average-over", action="append", default=[],
                        help="average each setting's score over this factor's levels, as over "
                             "seeds (repeatable), e.g. partition: one setting per --per level "
                             "for all of them")
    parser.add_argument("--last-k", type=int, default=LAST_K,
                        help=f"score = mean of the last K validation evaluations "
                             f"(default {LAST_K})")
    parser.add_argument("--score", choices=SCORES, default=SCORE,
                        help=f"what ranks the settings (default {SCORE}; val_rounds_to_target: "
                             "the first round validation accuracy reaches --target-accuracy, "
                             "fewer first; settings that miss it rank after those that reach "
                             "it, by validation accuracy)")
    parser.add_argument("--target-accuracy", type=float,
                        help="the target of --score val_rounds_to_target")
    parser.add_argument("--out", type=Path, help="output folder (default <first>/selection)")
    args = parser.parse_args(argv)
    out = args.out or args.folders[0] / "selection"
    try:
        if args.last_k < 1:
            raise ReportError(f"--last-k must be at least 1, got {args.last_k}")
        if (args.score in LOWER_IS_BETTER) != (args.target_accuracy is not None):
            raise ReportError("--target-accuracy goes with --score val_rounds_to_target, "
                              "and that score needs it")
        target = 1.0 if args.target_accuracy is None else args.target_accuracy
        runs = pd.DataFrame([load_run(run_dir, target, args.last_k)[0]
                             for run_dir in find_runs(args.folders)])
        runs = runs.reindex(columns=[*runs.columns, *(c for c in dict.fromkeys((SCORE, args.score))
                                                       if c not in runs)])
        group_columns = [c for c in varying_columns(runs) if c not in SEED_KEYS]
        chosen, table = select(runs, group_columns, args.per, args.score, args.average_over)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "candidates.csv", index=False)
    chosen.to_csv(out / "selected.csv", index=False)
    (out / "selected_overrides.txt").write_text("".join(f"{o}\n" for o in chosen["overrides"]))
    for _, row in chosen.iterrows():
        edge = f"  (on the grid's edge: {row['on_grid_edge']})" if row["on_grid_edge"] else ""
        edge += f"  ({row['note']})" if row["note"] else ""
        print(f"{row['overrides']}  # validation {args.score} {row[args.score]:.4f}, "
              f"runner-up {row['runner_up_' + args.score]:.4f}, {row['settings_tried']} "
              f"settings{edge}")
    print(f"selection written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
