"""The robustness study's tables and figures, from the report's ``runs.csv`` and ``rounds.csv``.

``uv run python experiments/robustness/analyze.py [FOLDER]`` reads ``results/runs.csv`` and
``results/rounds.csv`` (or FOLDER's; written by ``python -m fedlab.report``, see the README)
and writes, beside them:

- ``survival.csv``: per aggregator and condition (clean, or attack at a fraction), the last-3
  held-out accuracy over the 5 seeds (mean, 95 % t half-width), how many seeds collapsed
  (last-3 accuracy <= 0.2, chance is 0.1) and how many diverged, the mean test-set standard
  error, and the final backdoor accuracy where there is one. A run that diverged (its weights
  went non-finite and training stopped) is scored at chance, 0.10: the model it leaves is
  useless, and leaving it out would flatter the aggregator;
- ``versus_mean.csv``: each robust aggregator minus the mean, paired by seed, under every
  condition (clean included: the price of robustness); paired t-tests with Holm's correction
  over the whole table (one family);
- ``survival.png`` (the survival table as a heat map) and ``backdoor.png`` (backdoor accuracy
  over rounds, mean over seeds, per aggregator and fraction).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fedlab.report.stats import holm_family, paired_t_test  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results"
METRIC, SEED, ALPHA = "final_eval_accuracy_last_k", "schedule.seed", 0.05
COLLAPSED, CHANCE = 0.2, 0.1
AGGREGATORS = ["mean", "median", "trimmed_mean", "krum", "multi_krum", "geometric_median",
               "centered_clipping"]
ATTACKS = ["sign_flip", "gaussian", "label_flip", "backdoor"]
CONDITIONS = ["clean"] + [f"{a} {f:.0%}" for a in ATTACKS for f in (0.1, 0.3)]


def condition(row) -> str:
    """``clean`` or ``<attack> <fraction>`` for a run."""
    if row["clients.attack"] == "none" or row["clients.attack_fraction"] == 0:
        return "clean"
    return f"{row['clients.attack']} {row['clients.attack_fraction']:.0%}"


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The completed runs (with their condition) and the rounds table."""
    runs = pd.read_csv(RESULTS / "runs.csv")
    rounds = pd.read_csv(RESULTS / "rounds.csv")
    for table in (runs, rounds):
        table["clients.attack"] = table["clients.attack"].fillna("none")
        table["clients.attack_fraction"] = table["clients.attack_fraction"].fillna(0.0)
        table["condition"] = table.apply(condition, axis=1)
    return runs, rounds


def final_backdoor(rounds: pd.DataFrame) -> pd.Series:
    """Each run's last measured backdoor accuracy."""
    if "backdoor_accuracy" not in rounds:
        return pd.Series(dtype=float)
    measured = rounds.dropna(subset=["backdoor_accuracy"]).sort_values("round")
    return measured.groupby("run")["backdoor_accuracy"].last()


def survival(runs: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """The survival table (module doc)."""
    runs = runs.assign(backdoor=runs["run"].map(final_backdoor(rounds)))
    diverged = runs["status"] == "diverged"
    rows = []
    for (aggregator, cond), group in runs.groupby(["aggregator", "condition"]):
        values = group[METRIC].to_numpy()
        n = len(values)
        half = (paired_t_test(values).half_width if n >= 3 else np.nan)
        rows.append({"aggregator": aggregator, "condition": cond, "n": n,
                     "accuracy_mean": values.mean(), "accuracy_half_width_95": half,
                     "seeds_collapsed": int((values <= COLLAPSED).sum()),
                     "seeds_diverged": int(diverged[group.index].sum()),
                     "test_se_mean": group["final_eval_accuracy_se"].mean(),
                     "backdoor_accuracy_mean": group["backdoor"].mean()})
    table = pd.DataFrame(rows)
    table["aggregator"] = pd.Categorical(table["aggregator"], AGGREGATORS, ordered=True)
    table["condition"] = pd.Categorical(table["condition"], CONDITIONS, ordered=True)
    return table.sort_values(["aggregator", "condition"]).reset_index(drop=True)


def versus_mean(runs: pd.DataFrame) -> pd.DataFrame:
    """Each robust aggregator minus the mean, by seed, in every condition (one Holm family)."""
    rows = []
    for cond in CONDITIONS:
        at = runs[runs["condition"] == cond].pivot_table(index=SEED, columns="aggregator",
                                                         values=METRIC)
        for aggregator in AGGREGATORS[1:]:
            if aggregator not in at or "mean" not in at:
                continue
            differences = (at[aggregator] - at["mean"]).dropna()
            if len(differences) < 3:
                continue
            rows.append({"condition": cond, "aggregator": aggregator,
                         **paired_t_test(differences.to_numpy()).columns()})
    return holm_family(rows, ALPHA)


def plot_survival(table: pd.DataFrame) -> None:
    """The mean last-3 accuracy of every aggregator in every condition, as a heat map."""
    grid = table.pivot(index="aggregator", columns="condition", values="accuracy_mean")
    grid = grid.reindex(index=AGGREGATORS, columns=CONDITIONS)
    figure, axes = plt.subplots(figsize=(11, 4.2))
    image = axes.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(CONDITIONS)), CONDITIONS, rotation=30, ha="right")
    axes.set_yticks(range(len(AGGREGATORS)), AGGREGATORS)
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        if np.isfinite(value):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center",
                      color="white" if value < 0.5 else "black", fontsize=8)
    figure.colorbar(image, ax=axes, label="last-3 held-out accuracy (mean of 5 seeds)")
    axes.set_title("Who survives what: MNIST, Dirichlet(0.5) label skew, 10 of 50 clients per "
                   "round, attack scale 4")
    figure.tight_layout()
    figure.savefig(RESULTS / "survival.png", dpi=120)
    plt.close(figure)


def plot_backdoor(rounds: pd.DataFrame) -> None:
    """Backdoor accuracy over rounds, mean over seeds, per aggregator; one panel per fraction."""
    attacked = rounds[(rounds["clients.attack"] == "backdoor")].dropna(
        subset=["backdoor_accuracy"])
    fractions = sorted(attacked["clients.attack_fraction"].unique())
    if not fractions:
        return
    figure, panels = plt.subplots(1, len(fractions), figsize=(6 * len(fractions), 4),
                                  sharey=True, squeeze=False)
    for panel, fraction in zip(panels[0], fractions, strict=True):
        at = attacked[attacked["clients.attack_fraction"] == fraction]
        for aggregator in AGGREGATORS:
            curve = at[at["aggregator"] == aggregator].groupby("round")["backdoor_accuracy"].mean()
            if len(curve):
                panel.plot(curve.index, curve.to_numpy(), label=aggregator)
        panel.set_title(f"backdoor, {fraction:.0%} malicious, boost 4")
        panel.set_xlabel("round")
        panel.set_ylim(0, 1)
    panels[0][0].set_ylabel("backdoor accuracy (triggered images -> class 0)")
    panels[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "backdoor.png", dpi=120)
    plt.close(figure)


def main() -> None:
    """Write the tables and figures beside the report's CSVs, and print the tables."""
    runs, rounds = load()
    diverged = (runs["status"] == "failed") & runs["note"].fillna("").str.contains("diverged")
    runs.loc[diverged, "status"] = "diverged"
    runs.loc[diverged, METRIC] = CHANCE
    others = runs[~runs["status"].isin(["completed", "diverged"])]
    if len(others):
        print(f"left out, neither completed nor diverged: {len(others)} runs")
    runs = runs[runs["status"].isin(["completed", "diverged"])]
    table = survival(runs, rounds)
    table.to_csv(RESULTS / "survival.csv", index=False, float_format="%.6g")
    compared = versus_mean(runs)
    compared.to_csv(RESULTS / "versus_mean.csv", index=False, float_format="%.6g")
    plot_survival(table)
    plot_backdoor(rounds)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).to_string(index=False))
        print(compared.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
