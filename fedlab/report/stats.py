"""Summaries over seeds, paired comparisons with t intervals, and Holm's correction.

- :func:`summarize`: mean, std and n of every figure per group (``summary.csv``), with the
  accuracy-vs-upload Pareto front;
- :func:`paired_comparisons`: for each varying factor and pair of its levels, the runs that
  agree on everything else (seed included) paired, the mean difference a - b with a 95 % t
  interval and a paired t-test p-value (``paired.csv``);
- :func:`paired_t_test`: that test on one set of differences;
- :func:`holm` and :func:`holm_correct`: Holm's step-down adjustment of a family of p-values,
  and the paired table's verdicts under it.

The figures compared are computed per run by :mod:`fedlab.runs.figures`; nothing here
recomputes them.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fedlab.report.collect import FIGURES

# Figures compared between paired runs.
PAIRED_FIGURES = ("final_eval_accuracy", "final_eval_accuracy_last_k", "rounds_to_target",
                  "uploaded_MiB", "final_client_accuracy_p10",
                  "final_personalized_accuracy_mean", "sim_seconds_to_target")
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # the family-wise error rate Holm's correction controls
# paired.csv as it was before the correction (``--no-correction``), and with it.
UNCORRECTED_COLUMNS = ["factor", "within", "a", "b", "metric", "mean_diff", "ci_low", "ci_high",
                       "n", "sd_diff", "verdict"]
COLUMNS = [*UNCORRECTED_COLUMNS[:-1], "p_value", "p_holm", "significant_holm", "verdict"]
# Fewer pairs than this give the differences, no interval and no p-value.
MIN_PAIRS = 3


def summarize(runs: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """Mean, std and count of every figure over the completed runs of each group.

    Args:
      runs: one row per run (``runs.csv``).
      group_columns: the columns that define a group (every varying one but the seed).

    Returns:
      One row per group: ``<figure>_mean``, ``<figure>_std``, ``n``, ``held_out_sets`` and
      ``pareto_front``; empty when no run completed.
    """
    completed = runs[runs["status"] == "completed"]
    if completed.empty:
        return pd.DataFrame()
    keys = group_columns or (lambda _: "all runs")
    grouped = completed.groupby(keys, dropna=False)
    table = grouped[list(FIGURES)].agg(["mean", "std", "count"])
    table.columns = [f"{figure}_{stat}" for figure, stat in table.columns]
    table = table.rename(columns={"final_eval_accuracy_count": "n"})
    table = table.drop(columns=[c for c in table.columns if c.endswith("_count")])
    table["held_out_sets"] = grouped["test_set_sha256"].nunique()
    table = table.reset_index().rename(columns={"index": "group"})
    table["pareto_front"] = pareto_front(table["uploaded_MiB_mean"],
                                         table["final_eval_accuracy_mean"])
    return table


def pareto_front(upload: pd.Series, accuracy: pd.Series) -> pd.Series:
    """Whether each (upload, accuracy) point is on the Pareto front.

    A point is on it when no other uploads at most as much and is at least as accurate while
    being strictly better in one of the two.

    Args:
      upload: each group's upload.
      accuracy: each group's accuracy, in the same order.

    Returns:
      A boolean series with ``upload``'s index.
    """
    points = list(zip(upload, accuracy, strict=True))
    return pd.Series([
        not any(u2 <= u and a2 >= a and (u2 < u or a2 > a) for u2, a2 in points)
        for u, a in points
    ], index=upload.index)


@dataclass(frozen=True)
class PairedT:
    """A paired t-test on n differences a - b (two-sided, n - 1 degrees of freedom).

    Attributes:
      n: number of pairs.
      mean: mean difference.
      sd: standard deviation of the differences (ddof 1).
      half_width: half the width of the 95 % t interval of the mean.
      t: the t statistic (0 when every difference is 0, +-inf when all are equal and not 0).
      p: its two-sided p-value (1 when every difference is 0, 0 when all are equal and not 0).
    """

    n: int
    mean: float
    sd: float
    half_width: float
    t: float
    p: float

    def columns(self) -> dict:
        """The test as the experiments' ``holm.csv`` columns.

        Returns:
          ``n, mean_diff, sd_diff, half_width_95, t, p``.
        """
        return {"n": self.n, "mean_diff": self.mean, "sd_diff": self.sd,
                "half_width_95": self.half_width, "t": self.t, "p": self.p}


def paired_t_test(differences) -> PairedT:
    """The paired t-test of the mean of ``differences`` against 0.

    Args:
      differences: the per-pair differences a - b (at least 2, no NaN).

    Returns:
      The test, with the 95 % interval's half width.
    """
    values = np.asarray(differences, dtype=float)
    n = len(values)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / np.sqrt(n))
    se = sd / np.sqrt(n)
    t = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    p = float(2 * stats.t.sf(abs(t), n - 1)) if math.isfinite(t) else 0.0
    return PairedT(n=n, mean=mean, sd=sd, half_width=half, t=float(t), p=p)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family.

    Sort the m p-values ascending; the i-th smallest (i from 0) is adjusted to
    ``max over j <= i of min(1, (m - j) p_(j))``. Rejecting where the adjusted p is below
    alpha controls the family-wise error rate at alpha under any dependence between the tests.
    NaN p-values are not members of the family (m counts the others) and stay NaN.

    Args:
      p_values: the family's p-values.

    Returns:
      The adjusted p-values, in the input's order.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    members = np.flatnonzero(~np.isnan(p))
    order = members[np.argsort(p[members], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def seed_paired_test(runs: pd.DataFrame, factor: str, a, b, metric: str,
                     pair_on: str = "schedule.seed") -> dict:
    """The paired t-test of ``metric`` between levels ``a`` and ``b`` of ``factor``, by seed.

    Args:
      runs: a runs table (``runs.csv``), one row per run.
      factor: the column whose levels are compared.
      a: the first level (differences are a - b).
      b: the second level.
      metric: the figure compared.
      pair_on: the column runs are paired on.

    Returns:
      :meth:`PairedT.columns` of the seeds both levels ran.
    """
    by_seed = runs.pivot_table(index=pair_on, columns=factor, values=metric)
    return paired_t_test((by_seed[a] - by_seed[b]).dropna().to_numpy()).columns()


def holm_family(rows: list[dict], alpha: float = ALPHA) -> pd.DataFrame:
    """A family of comparisons (each row with a ``p`` column) with Holm's adjustment.

    Args:
      rows: one dict per comparison, each with its ``p`` value (NaN: shown, not a member).
      alpha: the family-wise error rate.

    Returns:
      The rows as a table with ``holm_p``, ``survives_holm_<alpha>`` and ``family_size`` (the
      number of members).
    """
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["p"].to_numpy())
    table[f"survives_holm_{alpha:g}"] = table["holm_p"] < alpha
    table["family_size"] = int(table["p"].notna().sum())
    return table


def paired_comparisons(runs: pd.DataFrame, factors: list[str],
                       pairing_columns: list[str], pooled: bool = False) -> pd.DataFrame:
    """Mean paired differences ``a - b`` between the levels of each factor, with a t interval.

    For a factor (a config column that varies) and two of its levels a and b, runs are paired
    when they agree on every other column in ``pairing_columns`` (the seed included). Each
    figure of ``PAIRED_FIGURES`` gets the mean difference over the pairs where both runs have
    it, its 95 % confidence interval (t distribution, n - 1 degrees of freedom), the paired
    t-test's p-value and a verdict (per comparison: :func:`holm_correct` corrects them). A
    pair of levels with no run in common is listed with n = 0 and "unpaired". The comparison
    is made within each level of every other factor (``within`` = "model=simple_cnn"): the
    pairs of one comparison are then distinct runs, not the same runs counted again. Pairs
    pooled over the other factors' levels come only with ``pooled`` (``within`` = "pooled over
    model"); with a single factor the comparison is over all pairs (``within`` empty). A group's
    own settings belong to its level: ``algorithm.proximal_strength`` makes
    ``fedprox (proximal_strength=0.1)`` a level of the ``algorithm`` factor, not a factor of
    its own.

    Args:
      runs: one row per run.
      factors: the varying config columns (seeds excluded).
      pairing_columns: the columns paired runs agree on (factors and seeds).
      pooled: also compare over the pairs of every level of the other factors.

    Returns:
      The table of :data:`COLUMNS` but ``p_holm`` and ``significant_holm``.
    """
    completed = runs[runs["status"] == "completed"].copy()
    factors = [f for f in factors if f.split(".", 1)[0] == f or f.split(".", 1)[0] not in factors]
    for factor in factors:
        completed[factor] = level_labels(completed, factor, pairing_columns)
    pairing_columns = [c for c in pairing_columns if c in factors or "." not in c
                       or c.split(".", 1)[0] not in factors]
    tables = []
    if len(factors) == 1 or pooled:
        for factor in factors:
            others = [f for f in factors if f != factor]
            tables.append(_paired(completed, [factor], pairing_columns).assign(
                within=f"pooled over {', '.join(others)}" if others else ""))
    for stratum in factors:
        for level, members in completed.groupby(completed[stratum].astype(str)):
            others = [f for f in factors if f != stratum]
            tables.append(_paired(members, others, pairing_columns)
                          .assign(within=f"{stratum}={level}"))
    columns = [c for c in COLUMNS if c not in ("p_holm", "significant_holm")]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True).reindex(columns=columns)


def level_labels(runs: pd.DataFrame, factor: str, columns: list[str]) -> pd.Series:
    """``factor``'s value with its own varying settings: "fedprox (proximal_strength=0.1)".

    Args:
      runs: one row per run.
      factor: a group choice (``algorithm``).
      columns: the varying columns; those under ``factor.`` are its own settings.

    Returns:
      One label per run.
    """
    labels = runs[factor].astype(str)
    for column in (c for c in columns if c.startswith(factor + ".")):
        setting = column.split(".", 1)[1]
        labels = labels + runs[column].map(
            lambda value, setting=setting: "" if pd.isna(value) else f" ({setting}={value})")
    return labels


def _paired(completed: pd.DataFrame, factors: list[str],
            pairing_columns: list[str]) -> pd.DataFrame:
    rows = []
    for factor in factors:
        others = [c for c in pairing_columns if c != factor]
        levels = sorted(completed[factor].dropna().astype(str).unique())
        keyed = completed.assign(_level=completed[factor].astype(str),
                                 _key=completed[others].astype(str).agg("|".join, axis=1)
                                 if others else "")
        for a, b in itertools.combinations(levels, 2):
            pairs = keyed[keyed["_level"] == a].merge(keyed[keyed["_level"] == b], on="_key",
                                                      suffixes=("_a", "_b"))
            rows += compare_pairs(pairs, completed, {"factor": factor, "a": a, "b": b})
    return pd.DataFrame(rows)


def compare_pairs(pairs: pd.DataFrame, runs: pd.DataFrame, keys: dict,
                  missing: str | None = None) -> list[dict]:
    """One row per figure of ``PAIRED_FIGURES``: the differences ``<figure>_a - <figure>_b``.

    Args:
      pairs: paired runs side by side, columns suffixed ``_a`` and ``_b``.
      runs: the runs compared; a figure none of them has (client-level figures of runs
        without client test data) is skipped.
      keys: the columns that name the comparison (``factor``, ``within``, ``a``, ``b``).
      missing: the verdict where there are pairs but none has the figure in both runs
        (default: "unpaired").

    Returns:
      Rows of :func:`interval` with ``keys`` and ``metric``.
    """
    rows = []
    for figure in PAIRED_FIGURES:
        if runs[figure].isna().all():
            continue
        differences = (pairs[f"{figure}_a"] - pairs[f"{figure}_b"]).dropna()
        row = {**keys, "metric": figure, **interval(differences, keys["a"], keys["b"])}
        if missing and len(pairs) and not len(differences):
            row["verdict"] = missing
        rows.append(row)
    return rows


def fmt(value: float, sign: str = "") -> str:
    """A figure for a verdict: 4 decimals (accuracies), 1 for large figures (MiB).

    Args:
      value: the figure.
      sign: ``"+"`` to always show the sign.

    Returns:
      The text.
    """
    return f"{value:{sign}.1f}" if abs(value) >= 100 else f"{value:{sign}.4f}"


def interval(differences: pd.Series, a: str, b: str) -> dict:
    """The mean of paired differences a - b, its 95 % t interval, p-value and verdict.

    The verdict is per comparison ("a higher by x ± h (n=...)" where the interval excludes 0);
    :func:`holm_correct` rewrites it for a family.

    Args:
      differences: one difference per pair (no NaN).
      a: the first level's label.
      b: the second level's.

    Returns:
      ``mean_diff, ci_low, ci_high, n, sd_diff, p_value, verdict`` (only some of them from
      fewer than 3 pairs, which give the differences, no interval). Differences that are all
      the same ("identical", "a higher by x in all n pairs") get no p-value: there is no
      variation to test them against, and no family counts them.
    """
    n = len(differences)
    if n == 0:
        return {"n": 0, "verdict": "unpaired: no runs agree on everything else"}
    mean = float(differences.mean())
    if n < MIN_PAIRS:  # an interval from one or two pairs says nothing: show the differences
        listed = ", ".join(fmt(float(d), "+") for d in differences)
        return {"mean_diff": mean, "n": n,
                "verdict": f"n={n}: difference{'s' if n > 1 else ''} {listed}, no interval "
                           "(fewer than 3 pairs)"}
    test = paired_t_test(differences)
    mean, sd, half = test.mean, test.sd, test.half_width
    low, high = mean - half, mean + half
    higher = a if mean > 0 else b
    if sd == 0:
        verdict = (f"identical in all {n} pairs" if mean == 0
                   else f"{higher} higher by {fmt(abs(mean))} in all {n} pairs")
    elif low > 0 or high < 0:
        verdict = f"{higher} higher by {fmt(abs(mean))} ± {fmt(half)} (n={n})"
    else:
        verdict = f"no difference detected, n={n} ({fmt(mean, '+')} ± {fmt(half)})"
    return {"mean_diff": mean, "ci_low": low, "ci_high": high, "n": n, "sd_diff": sd,
            "p_value": test.p if sd > 0 else np.nan, "verdict": verdict}


def holm_correct(paired: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """The paired table with Holm's correction over every comparison that has a p-value.

    The family is every row with a p-value: n >= 3 pairs whose differences vary (all the
    factors, strata and figures the table shows). ``p_holm`` is the Holm-adjusted p-value and
    ``significant_holm`` whether it is below ``alpha``; a difference is called only then:
    "a higher by x ± h (n=5, Holm p 0.01)". Where the per-comparison interval excludes 0 but
    the adjusted p does not fall below ``alpha`` the verdict says "not after Holm". The
    intervals stay per comparison.

    Args:
      paired: :func:`paired_comparisons`' table (or the methods' one).
      alpha: the family-wise error rate.

    Returns:
      The table of :data:`COLUMNS`.
    """
    table = paired.reindex(columns=[c for c in COLUMNS if c not in ("p_holm",
                                                                      "significant_holm")])
    table = table.copy()
    table.insert(table.columns.get_loc("verdict"), "p_holm", holm(table["p_value"]))
    members = table["p_holm"].notna()
    significant = table["p_holm"] < alpha
    table.insert(table.columns.get_loc("verdict"), "significant_holm",
                 significant.astype(object).where(members))
    for index in table.index[members]:
        row = table.loc[index]
        higher = row["a"] if row["mean_diff"] > 0 else row["b"]
        half = row["ci_high"] - row["mean_diff"]
        n, p, p_holm = int(row["n"]), row["p_value"], row["p_holm"]
        if significant[index]:
            table.loc[index, "verdict"] = (f"{higher} higher by {fmt(abs(row['mean_diff']))} "
                                           f"± {fmt(half)} (n={n}, Holm p {p_holm:.2g})")
        elif row["ci_low"] > 0 or row["ci_high"] < 0:
            table.loc[index, "verdict"] = (
                f"not after Holm: {higher} higher by {fmt(abs(row['mean_diff']))} ± "
                f"{fmt(half)} per comparison (n={n}, p {p:.2g}, Holm p {p_holm:.2g})")
    return table


def family(paired: pd.DataFrame) -> dict:
    """The family :func:`holm_correct` corrected over, for the report to state.

    Args:
      paired: a corrected paired table.

    Returns:
      ``size`` (comparisons), ``pairs`` (distinct factor/stratum/level pairs), ``figures``
      (the metrics compared), ``significant`` (how many survive).
    """
    members = paired[paired["p_holm"].notna()] if "p_holm" in paired else paired.iloc[0:0]
    return {"size": len(members),
            "pairs": len(members.drop_duplicates(["factor", "within", "a", "b"])),
            "figures": list(dict.fromkeys(members["metric"])),
            "significant": int((members["significant_holm"] == True).sum())}  # noqa: E712
