"""The privacy frontier study's tables and figures, from the report's ``runs.csv``/``rounds.csv``.

``uv run python experiments/privacy_frontier/analyze.py [FOLDER]`` reads ``results/runs.csv`` and
``results/rounds.csv`` (or FOLDER's; written by ``python -m fedlab.report``, see the README) and
each run's ``summary.json`` (noise multiplier, cosines), and writes beside them:

- ``accuracy.csv``: per arm (DP-FedAvg with Poisson sampling, DP-FTRL with epoch sampling,
  clipping without noise) and budget, with canaries: the last-3 held-out accuracy over seeds
  (mean, 95 % t half-width from n >= 3), the mean test-set standard error, the claimed epsilon
  and the noise multiplier;
- ``ftrl_vs_fedavg.csv``: DP-FTRL minus DP-FedAvg, paired by seed at each budget; paired t-tests
  with Holm's correction over the budgets (one family);
- ``audit.csv``: claimed against empirical epsilon per arm and budget (each seed's estimate, their
  mean, min and max, and each seed's 95 % percentile bootstrap interval over its canaries,
  ``scipy.stats.bootstrap`` over the inserted and held-back cosines recomputed from the run's
  final model and start weights; also against the closed-form null ``N(0, 1/d)``), and the
  cosines' fits;
- ``canary_cost.csv``: with minus without canaries, paired by seed, per arm at each budget that
  has runs without canaries (and clipping only); Holm over the arms and budgets;
- ``accountants.csv``: for each DP-FedAvg noise multiplier, epsilon by Rényi DP and by PLD every
  10 rounds up to the runs' last, computed by ``fedlab.privacy.accounting.epsilon`` (what
  ``dp_epsilon`` and ``aggregator.accountant=both`` report) for the runs' federation, cohort and
  delta; DP-FTRL's tree event has RDP only;
- ``accuracy_over_rounds.png``, ``epsilon_over_rounds.png``, ``claimed_vs_empirical.png``.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from fedlab.config.choices import Accountant, Sampling  # noqa: E402
from fedlab.privacy.accounting import epsilon  # noqa: E402
from fedlab.privacy.audit import direction_cosines, empirical_epsilon  # noqa: E402
from fedlab.report.stats import holm_family, paired_t_test  # noqa: E402
from fedlab.runs.files import RUN_CONFIG_FILE  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results"
METRIC, SEED, ALPHA = "final_eval_accuracy_last_k", "schedule.seed", 0.05
FEDAVG, FTRL, CLIP_ONLY = "DP-FedAvg (Poisson)", "DP-FTRL (epoch)", "clipping only"
ARMS = [FEDAVG, FTRL, CLIP_ONLY]
RESAMPLES = 400  # bootstrap resamples of each run's canaries


def run_settings(run: str) -> dict:
    """A run's arm, budget, canaries, seeds, federation and rates (its resolved config)."""
    import yaml

    config = yaml.safe_load((Path(run) / RUN_CONFIG_FILE).read_text())
    aggregator, optimizer = config["aggregator"], config["optimizer"]
    if aggregator["_target_"].endswith("DpFtrlAggregator"):
        arm_name = FTRL
    elif str(aggregator.get("noise_multiplier")) in ("0", "0.0"):
        arm_name = CLIP_ONLY
    else:
        arm_name = FEDAVG
    budget = aggregator.get("target_epsilon")
    return {"arm": arm_name, "budget": np.nan if budget is None else float(budget),
            "canaries": int(config["privacy_audit"]["canaries"]),
            "audit_seed": int(config["privacy_audit"]["seed"]),
            SEED: int(config["schedule"]["seed"]),
            "num_clients": int(config["dataset"]["num_clients"]),
            "clients_per_round": int(config["schedule"]["clients_per_round"]),
            "rounds": int(config["schedule"]["rounds"]),
            "target_delta": float(aggregator["target_delta"]),
            "client_rate": float(optimizer["client"]["learning_rate"]),
            "server_rate": float(optimizer["server"]["learning_rate"])}


def summary(run: str) -> dict:
    """A run's summary.json."""
    return json.loads((Path(run) / "summary.json").read_text())


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The completed runs (arm, budget, canaries, noise, cosines) and the rounds table."""
    runs = pd.read_csv(RESULTS / "runs.csv")
    rounds = pd.read_csv(RESULTS / "rounds.csv")
    settings = pd.DataFrame([run_settings(run) for run in runs["run"]], index=runs["run"])
    runs = runs.drop(columns=[c for c in settings if c in runs]).join(settings, on="run")
    rounds = rounds.drop(columns=[c for c in settings if c in rounds]).join(settings, on="run")
    left_out = runs[runs["status"] != "completed"]
    if len(left_out):
        print(f"left out, not completed: {len(left_out)} runs")
    runs = runs[runs["status"] == "completed"].copy()
    details = pd.DataFrame([summary(run) for run in runs["run"]], index=runs.index)
    for key in ("dp_noise_multiplier", "canary_cosine_mean", "held_back_cosine_mean",
                "canary_cosine_std", "held_back_cosine_std"):
        runs[key] = details[key] if key in details else np.nan
    runs["empirical_epsilon_analytic_null"] = (details["empirical_epsilon_analytic_null"]
                                               if "empirical_epsilon_analytic_null" in details
                                               else np.nan)
    # How much of an estimate is the canaries' sampling: a bootstrap over them, per run.
    rng = np.random.default_rng(0)
    intervals = {run: bootstrap(run, rng) for run, canaries in zip(runs["run"], runs["canaries"],
                                                                    strict=True) if canaries}
    runs["bootstrap_low"] = runs["run"].map(lambda run: intervals.get(run, (np.nan,))[0])
    runs["bootstrap_high"] = runs["run"].map(lambda run: intervals.get(run, (np.nan, np.nan))[1])
    return runs, rounds


def cosines(run: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's inserted and held-back canaries' cosines, recomputed from its files.

    The model's change is ``audit_start_weights.npy`` minus ``model.keras``'s trainable weights;
    the directions come from the run's ``privacy_audit.seed`` (``fedlab.privacy.audit``), K
    from its summary.
    """
    import tensorflow as tf

    folder = Path(run)
    figures = summary(run)
    model = tf.keras.models.load_model(folder / "model.keras", compile=False)
    final = np.concatenate([w.numpy().astype(np.float64).ravel()
                            for w in model.trainable_weights])
    seed = run_settings(run)["audit_seed"]
    k = int(figures["audit_canaries"])
    values = direction_cosines(np.load(folder / "audit_start_weights.npy") - final, seed, 2 * k)
    inserted, held_back = values[:k], values[k:]
    # The recomputation is the run's own: its fit must come out as the run reported it.
    np.testing.assert_allclose(inserted.mean(), figures["canary_cosine_mean"], rtol=1e-4,
                               atol=1e-9)
    return inserted, held_back


def bootstrap(run: str, rng: np.random.Generator) -> tuple[float, float]:
    """The 95 % percentile bootstrap interval of the estimate, the canaries resampled.

    The inserted and the held-back cosines are resampled with replacement, each on its own, at
    the run's own delta (``audit_delta``).
    """
    inserted, held_back = cosines(run)
    delta = summary(run)["audit_delta"]
    interval = stats.bootstrap(
        (inserted, held_back), lambda a, b: empirical_epsilon(a, b, delta), vectorized=False,
        paired=False, n_resamples=RESAMPLES, method="percentile", random_state=rng
    ).confidence_interval
    return float(interval.low), float(interval.high)


def budgets(runs: pd.DataFrame) -> list[float]:
    """The study's target epsilons, from its runs."""
    return sorted(runs["budget"].dropna().unique().tolist())


def level(table: pd.DataFrame, arm_name: str, budget: float) -> pd.DataFrame:
    """The rows of one arm at one budget (clipping only has none)."""
    rows = table[table["arm"] == arm_name]
    return rows if arm_name == CLIP_ONLY else rows[rows["budget"] == budget]


def accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """The accuracy table (module doc)."""
    rows = []
    audited = runs[runs["canaries"] > 0]
    for arm_name in ARMS:
        for budget in (budgets(runs) if arm_name != CLIP_ONLY else [np.inf]):
            group = level(audited, arm_name, budget)
            if group.empty:
                continue
            values = group[METRIC].to_numpy()
            rows.append({"arm": arm_name, "target_epsilon": budget, "n": len(values),
                         "accuracy_mean": values.mean(),
                         "accuracy_half_width_95": (paired_t_test(values).half_width
                                                    if len(values) >= 3 else np.nan),
                         "test_se_mean": group["final_eval_accuracy_se"].mean(),
                         "claimed_epsilon": group["dp_epsilon"].mean(),
                         "noise_multiplier": group["dp_noise_multiplier"].mean(),
                         "client_rate": group["client_rate"].iloc[0],
                         "server_rate": group["server_rate"].iloc[0]})
    return pd.DataFrame(rows)


def ftrl_vs_fedavg(runs: pd.DataFrame) -> pd.DataFrame:
    """DP-FTRL minus DP-FedAvg by seed at each budget (one Holm family)."""
    audited = runs[runs["canaries"] > 0]
    rows = []
    for budget in budgets(runs):
        at = audited[audited["budget"] == budget].pivot_table(index=SEED, columns="arm",
                                                              values=METRIC)
        if FTRL not in at or FEDAVG not in at:
            continue
        differences = (at[FTRL] - at[FEDAVG]).dropna()
        if len(differences) >= 3:
            rows.append({"target_epsilon": budget,
                         **paired_t_test(differences.to_numpy()).columns()})
    return holm_family(rows, ALPHA) if rows else pd.DataFrame()


def audit(runs: pd.DataFrame) -> pd.DataFrame:
    """Claimed against empirical epsilon (module doc)."""
    rows = []
    audited = runs[runs["canaries"] > 0]
    for arm_name in ARMS:
        for budget in (budgets(runs) if arm_name != CLIP_ONLY else [np.inf]):
            group = level(audited, arm_name, budget).sort_values(SEED)
            if group.empty:
                continue
            estimates = group["empirical_epsilon"].to_numpy()
            rows.append({"arm": arm_name, "target_epsilon": budget, "n": len(group),
                         "claimed_epsilon": group["dp_epsilon"].mean(),
                         "empirical_by_seed": " ".join(f"{e:.3g}" for e in estimates),
                         "empirical_mean": estimates.mean(), "empirical_min": estimates.min(),
                         "empirical_max": estimates.max(),
                         "bootstrap_95_by_seed": " ".join(
                             f"[{low:.3g}, {high:.3g}]" for low, high in
                             zip(group["bootstrap_low"], group["bootstrap_high"], strict=True)),
                         "analytic_null_by_seed": " ".join(
                             f"{e:.3g}" for e in group["empirical_epsilon_analytic_null"]),
                         "analytic_null_mean": group["empirical_epsilon_analytic_null"].mean(),
                         "canary_cosine_mean": group["canary_cosine_mean"].mean(),
                         "held_back_cosine_mean": group["held_back_cosine_mean"].mean(),
                         "canary_cosine_std": group["canary_cosine_std"].mean(),
                         "held_back_cosine_std": group["held_back_cosine_std"].mean()})
    return pd.DataFrame(rows)


def canary_cost(runs: pd.DataFrame) -> pd.DataFrame:
    """With minus without canaries, by seed (one Holm family over the arms and budgets)."""
    rows = []
    without = runs[runs["canaries"] == 0]
    for arm_name in ARMS:
        for budget in (budgets(without) if arm_name != CLIP_ONLY else [np.inf]):
            at = level(runs, arm_name, budget).pivot_table(index=SEED, columns="canaries",
                                                           values=METRIC)
            if 0 not in at or len(at.columns) != 2:
                continue
            canaries = max(at.columns)
            differences = (at[canaries] - at[0]).dropna()
            if len(differences) >= 3:
                rows.append({"arm": arm_name, "target_epsilon": budget, "canaries": canaries,
                             **paired_t_test(differences.to_numpy()).columns()})
    return holm_family(rows, ALPHA) if rows else pd.DataFrame()


def accountants(runs: pd.DataFrame) -> pd.DataFrame:
    """RDP and PLD epsilon of DP-FedAvg's noise multipliers over rounds (module doc)."""
    rows = []
    fedavg = runs[(runs["arm"] == FEDAVG) & (runs["canaries"] > 0)]
    for budget, group in fedavg.groupby("budget"):
        run = group.iloc[0]
        noise = float(run["dp_noise_multiplier"])
        for rounds in range(10, int(run["rounds"]) + 1, 10):
            rows.append({"target_epsilon": budget, "noise_multiplier": noise, "rounds": rounds,
                         **{f"epsilon_{name.value}": epsilon(
                             rounds, noise, int(run["num_clients"]),
                             int(run["clients_per_round"]), float(run["target_delta"]),
                             Sampling.poisson, name)
                            for name in (Accountant.rdp, Accountant.pld)}})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["pld_over_rdp"] = table["epsilon_pld"] / table["epsilon_rdp"]
    return table


def plot_over_rounds(rounds: pd.DataFrame, column: str, label: str, name: str,
                     accountant_table: pd.DataFrame | None = None) -> None:
    """``column`` over rounds, mean over seeds, one panel per budget, one line per arm."""
    audited = rounds[rounds["canaries"] > 0].dropna(subset=[column])
    levels = budgets(audited)
    figure, panels = plt.subplots(1, len(levels), figsize=(15, 4), sharey=True, squeeze=False)
    panels = panels[0]
    for panel, budget in zip(panels, levels, strict=True):
        for arm_name in ARMS:
            if arm_name == CLIP_ONLY and column == "dp_epsilon":
                continue
            curve = level(audited, arm_name, budget).groupby("round")[column].mean()
            if len(curve):
                panel.plot(curve.index, curve.to_numpy(), label=arm_name,
                           linestyle=":" if arm_name == CLIP_ONLY else "-")
        if accountant_table is not None and not accountant_table.empty:
            pld = accountant_table[accountant_table["target_epsilon"] == budget]
            panel.plot(pld["rounds"], pld["epsilon_pld"], "k--", label="DP-FedAvg, PLD")
        panel.set_title(f"target epsilon {budget:g}")
        panel.set_xlabel("round")
    panels[0].set_ylabel(label)
    panels[-1].legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / name, dpi=120)
    plt.close(figure)


def plot_claimed_vs_empirical(runs: pd.DataFrame) -> None:
    """Each run's empirical epsilon against its claimed one (log-log), per arm."""
    audited = runs[runs["canaries"] > 0]
    figure, axes = plt.subplots(figsize=(6, 5))
    for arm_name, marker in zip(ARMS, "osx", strict=True):
        group = audited[audited["arm"] == arm_name]
        if group.empty:
            continue
        claimed = group["dp_epsilon"].replace(np.inf, np.nan).fillna(100.0)
        axes.scatter(claimed, group["empirical_epsilon"].clip(lower=1e-3), marker=marker,
                     label=arm_name + (" (claimed: none, drawn at 100)"
                                       if arm_name == CLIP_ONLY else ""))
    line = np.array([0.5, 200])
    axes.plot(line, line, "k:", label="empirical = claimed")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("claimed epsilon (RDP, after the last round)")
    axes.set_ylabel("empirical epsilon (one-shot, final model)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "claimed_vs_empirical.png", dpi=120)
    plt.close(figure)


def main() -> None:
    """Write the tables and figures beside the report's CSVs, and print the tables."""
    runs, rounds = load()
    tables = {"accuracy": accuracy(runs), "ftrl_vs_fedavg": ftrl_vs_fedavg(runs),
              "audit": audit(runs), "canary_cost": canary_cost(runs),
              "accountants": accountants(runs)}
    for name, table in tables.items():
        table.to_csv(RESULTS / f"{name}.csv", index=False, float_format="%.6g")
    plot_over_rounds(rounds, "eval_accuracy", "held-out accuracy (mean over seeds)",
                     "accuracy_over_rounds.png")
    plot_over_rounds(rounds, "dp_epsilon", "claimed epsilon (RDP)", "epsilon_over_rounds.png",
                     tables["accountants"])
    plot_claimed_vs_empirical(runs)
    with pd.option_context("display.width", 220, "display.max_rows", 200,
                           "display.max_columns", 30):
        for name, table in tables.items():
            print(f"== {name}")
            print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
