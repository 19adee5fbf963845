"""Methods, not settings: pair each method at its own tuned settings with the others, by seed.

``python -m fedlab.report FOLDERS --method algorithm`` makes a method the value of ``algorithm``
(with its own settings, ``algorithm.proximal_strength``) plus whatever was tuned for it: its
learning rates differ from another method's and must not break the pairing, as they do when
every varying setting is a factor (:func:`fedlab.report.stats.paired_comparisons`). The tuned
settings are

- with ``--selected selected.csv`` (``python -m fedlab.select``'s output, one or more files):
  its setting columns other than the method's keys and the ``--per`` factors it was selected
  within; runs of a method at another setting than its selected one are left out;
- and every other varying column whose levels differ between the methods (not crossed with
  them: FedAvg ran at client lr 0.3, SCAFFOLD at 0.03), unless that would leave two runs of one
  method on one seed in one stratum.

The remaining varying columns are factors: methods are paired by seed within each of their
levels (strata). :func:`method_comparisons` works on the runs table alone (``runs.csv``), so a
study's pairs can be recomputed without its run folders (``--from-runs``).
"""

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fedlab.report.collect import SEED_KEYS, ReportError, varying_columns
from fedlab.report.stats import UNCORRECTED_COLUMNS, compare_pairs, level_labels
from fedlab.runs import figures

# selected.csv columns that are not settings (fedlab.report.select writes them).
SELECTION_COLUMNS = ("per", "settings_tried", "seeds_per_setting", "on_grid_edge", "note",
                     "overrides", "final_val_accuracy_last_k", "val_rounds_to_target")


@dataclass
class MethodPairing:
    """The methods' paired table and what the report says about it.

    Attributes:
      keys: the config keys that name a method (``--method``).
      tuned: the settings counted as part of a method.
      factors: the remaining factors, within whose levels methods are paired.
      seeds: the columns runs are paired on.
      settings: each method's tuned values (``method`` and the tuned columns; a method with
        several rows was tuned per stratum).
      table: one row per stratum, pair of methods and figure (the paired table's columns).
      pairs: the pairs of methods made: ``within, a, b, n, seeds``.
      unpaired: ``within: a vs b`` of each pair of methods no seed pairs.
      left_out: runs not at their method's selected setting (with ``--selected``).
      duplicates: runs left out as a second run of one method, stratum and seed.
      selected_from: the selected.csv files read.
    """

    keys: list[str]
    tuned: list[str]
    factors: list[str]
    seeds: list[str]
    settings: pd.DataFrame
    table: pd.DataFrame
    pairs: pd.DataFrame
    unpaired: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    selected_from: list[str] = field(default_factory=list)


def read_selected(paths: list[Path]) -> tuple[pd.DataFrame, list[str] | None]:
    """``fedlab.select``'s ``selected.csv`` files as one table.

    Args:
      paths: the files (one per method when each was tuned in its own sweep).

    Returns:
      ``(table, per)``: the rows, and the ``--per`` keys the selection was made within (from
      the ``per`` column; ``None`` for files written before it).

    Raises:
      ReportError: a file is missing or the files disagree on ``per``.
    """
    tables = []
    for path in paths:
        if not Path(path).is_file():
            raise ReportError(f"--selected {path}: not a file")
        tables.append(figures.read_table(path))
    table = pd.concat(tables, ignore_index=True)
    if "per" not in table or table["per"].isna().all():
        return table, None
    pers = set(table["per"].fillna("").astype(str))
    if len(pers) > 1:
        raise ReportError(f"--selected: the files were selected per different keys ({pers})")
    return table, pers.pop().split()


def setting_columns(selected: pd.DataFrame) -> list[str]:
    """The config columns of a ``selected.csv``.

    Args:
      selected: :func:`read_selected`'s table.

    Returns:
      The method keys, ``--per`` factors and tuned settings, in the file's order.
    """
    return [c for c in selected.columns if c not in SELECTION_COLUMNS
            and not c.startswith("runner_up_")]


def _same(value, chosen) -> bool:
    """Whether a run's config value is the selected one (numbers compared as numbers)."""
    if pd.isna(value) and pd.isna(chosen):
        return True
    try:
        return bool(np.isclose(float(value), float(chosen), rtol=1e-9, atol=0))
    except (TypeError, ValueError):
        return str(value) == str(chosen)


def method_labels(runs: pd.DataFrame, keys: list[str], varying: list[str]) -> pd.Series:
    """Each run's method: ``fedavg``, ``fedprox (proximal_strength=0.1)``, or ``k=v, k=v``.

    Args:
      runs: one row per run.
      keys: the config keys that name a method.
      varying: the varying columns (a key's own settings among them join its label).

    Returns:
      One label per run.
    """
    labels = [level_labels(runs, key, varying) for key in keys]
    if len(keys) == 1:
        return labels[0]
    return pd.concat([f"{key}=" + label for key, label in zip(keys, labels, strict=True)],
                     axis=1).agg(", ".join, axis=1)


def _stratum(row: pd.Series, factors: list[str]) -> str:
    return ", ".join(f"{c}={row[c]}" for c in factors)


def _seeds_text(values: pd.Series) -> str:
    return ", ".join(sorted(values.astype(str), key=lambda s: (len(s), s)))


def _crossed(runs: pd.DataFrame, column: str) -> bool:
    """Whether every method ran at the same levels of ``column``."""
    levels = runs.groupby("_method")[column].apply(lambda s: frozenset(s.astype(str)))
    return levels.nunique() == 1


def _choose_tuned(runs: pd.DataFrame, candidates: list[str], chosen: list[str],
                  seeds: list[str]) -> list[str]:
    """The candidates that belong to a method: ``chosen`` and those not crossed with methods."""
    tuned = list(chosen) + [c for c in candidates if c not in chosen and not _crossed(runs, c)]
    while True:  # a setting that tells two runs of one method, stratum and seed apart is a factor
        factors = [c for c in candidates if c not in tuned]
        clashes = runs[runs.duplicated(["_method", *factors, *seeds], keep=False)]
        telling = [c for c in tuned if c not in chosen and len(clashes)
                   and clashes.groupby(["_method", *factors, *seeds], dropna=False)[c]
                   .nunique(dropna=False).max() > 1]
        if not telling:
            return tuned
        tuned.remove(telling[-1])


def method_comparisons(runs: pd.DataFrame, keys: list[str],
                       selected: list[Path] | None = None) -> MethodPairing:
    """Paired differences between methods, each at its own tuned settings, by seed.

    Runs of methods a and b are paired when they share a seed within one stratum (one level of
    every remaining factor); each figure of :data:`fedlab.report.stats.PAIRED_FIGURES` gets the
    mean difference a - b, its 95 % t interval, p-value and verdict, as in
    :func:`fedlab.report.stats.paired_comparisons`. Pairs of methods no seed pairs are not
    rows: they are listed in ``unpaired``.

    Args:
      runs: one row per run (``runs.csv``, or :func:`fedlab.report.collect.collect_runs`).
      keys: the config keys that name a method, e.g. ``["algorithm"]``.
      selected: ``fedlab.select``'s ``selected.csv`` files: what was tuned, and the setting
        each method's runs must be at.

    Returns:
      The pairing, its table and what could not be paired.

    Raises:
      ReportError: a key is not a varying config value of the runs, or ``selected`` does not
        name the keys.
    """
    varying = varying_columns(runs)
    unknown = [k for k in keys if k not in runs]
    if unknown or not keys:
        raise ReportError(f"--method {','.join(unknown or keys) or '(empty)'}: not a config "
                          f"value of these runs (those that vary: {', '.join(varying)})")
    completed = runs[runs["status"] == "completed"].copy()
    seeds = [c for c in SEED_KEYS if c in runs and runs[c].astype(str).nunique() > 1]
    own = [c for c in varying if any(c.startswith(k + ".") for k in keys)]
    candidates = [c for c in varying if c not in keys and c not in own and c not in seeds]
    completed["_method"] = method_labels(completed, keys, varying)
    chosen, left_out, selected_from = [], [], []
    if selected:
        table, per = read_selected(selected)
        selected_from = [str(p) for p in selected]
        columns = setting_columns(table)
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ReportError(f"--selected: {', '.join(missing)} is not a column of "
                              f"{', '.join(selected_from)}")
        within = [k for k in (per or keys) if k in columns and k not in keys]
        chosen = [c for c in columns if c in candidates and c not in within]
        match = [c for c in columns if c in completed]
        at_selected = pd.Series([any(all(_same(run[c], row[c]) for c in match)
                                     for _, row in table.iterrows())
                                 for _, run in completed.iterrows()],
                                index=completed.index, dtype=bool)
        left_out = completed.loc[~at_selected, "run"].astype(str).tolist()
        completed = completed[at_selected]
    tuned = _choose_tuned(completed, candidates, chosen, seeds)
    factors = [c for c in candidates if c not in tuned]
    duplicated = completed.duplicated(["_method", *factors, *seeds])
    duplicates = completed.loc[duplicated, "run"].astype(str).tolist()
    completed = completed[~duplicated]
    completed = completed.assign(_seed=pd.Series(
        ["|".join(map(str, key)) for key in completed[seeds].itertuples(index=False)]
        if seeds else "", index=completed.index, dtype=object))
    rows, pairs, unpaired = [], [], []
    methods = sorted(completed["_method"].unique())
    strata = (completed.groupby(factors, dropna=False, sort=True) if factors
              else [((), completed)] if len(completed) else [])
    for _, members in strata:
        within = _stratum(members.iloc[0], factors)
        for a, b in itertools.combinations(methods, 2):
            merged = members[members["_method"] == a].merge(
                members[members["_method"] == b], on="_seed", suffixes=("_a", "_b"))
            if merged.empty:
                unpaired.append(f"{a} vs {b}" + (f" within {within}" if within else ""))
                continue
            pairs.append({"within": within, "a": a, "b": b, "n": len(merged),
                          "seeds": _seeds_text(merged[f"{seeds[0]}_a"]) if seeds else ""})
            rows += compare_pairs(merged, completed, {"factor": ",".join(keys),
                                                      "within": within, "a": a, "b": b},
                                  missing="no pair has it in both runs (a target not reached)")
    columns = [*UNCORRECTED_COLUMNS[:-1], "p_value", "verdict"]
    settings = (completed[["_method", *factors, *tuned]].drop_duplicates()
                .rename(columns={"_method": "method"}).sort_values(["method", *factors])
                .reset_index(drop=True))
    return MethodPairing(keys=list(keys), tuned=tuned, factors=factors, seeds=seeds,
                         settings=settings,
                         table=pd.DataFrame(rows).reindex(columns=columns),
                         pairs=pd.DataFrame(pairs, columns=["within", "a", "b", "n", "seeds"]),
                         unpaired=unpaired, left_out=left_out, duplicates=duplicates,
                         selected_from=selected_from)
