"""Table 2 of McMahan et al. 2017 from fedlab's runs: rounds to the target, and FedAvg's speedup.

    uv run python experiments/reproductions/mcmahan2017_table2/table.py \
        0.92=<report --target-accuracy 0.92>/runs.csv 0.88=<... 0.88>/runs.csv > table.md

Reads the ``runs.csv`` files ``python -m fedlab.report --target-accuracy A`` wrote for the test
runs, one per target; each run's figures come from the report of its own target
(``callbacks.target_stop.accuracy``: 0.92 IID, 0.88 non-IID). A table row is one (algorithm,
E, B), a column pair one partition: the rounds test accuracy took to reach the target (mean
over seeds, then each seed's), and the speedup over FedSGD: FedSGD's rounds / the row's rounds
within each seed (same seed, same partition: paired), the mean of the per-seed ratios and their
range. A run that stopped at the round cap short of the target counts as "> cap": a ratio
against it is a bound.
"""

import sys

import numpy as np
import pandas as pd

# Digits each client trains on (4,000 training digits less 20 % validation, over 100 clients):
# u = E n / B, the paper's local updates per round.
DIGITS_PER_CLIENT = 32
NO_BATCHING = 1000  # batch_size at or above every client's digits: B = infinity


def row_label(algorithm: str, epochs: int, batch: int) -> tuple[str, str, str, str]:
    """(method, E, B, u) as the paper prints them."""
    if algorithm == "fedsgd":
        return "FedSGD", "1", "∞", "1"
    b = "∞" if batch >= NO_BATCHING else str(batch)
    updates = epochs * (1 if batch >= NO_BATCHING else DIGITS_PER_CLIENT / batch)
    return "FedAvg", str(epochs), b, f"{updates:g}"


def rounds_text(rounds: pd.Series, cap: int) -> str:
    """"mean (a / b / c)" with "> cap" for a seed that did not reach the target."""
    each = " / ".join("> %d" % cap if np.isnan(r) else "%d" % r for r in rounds)
    if rounds.isna().any():
        return f"> {cap} ({each})" if rounds.isna().all() else f"({each})"
    return f"{rounds.mean():.0f} ({each})"


def speedup_text(baseline: pd.Series, rounds: pd.Series, cap: int) -> str:
    """FedSGD rounds / these rounds per seed: mean [min, max]; '>' where FedSGD missed."""
    ratios = baseline.fillna(cap) / rounds
    if rounds.isna().any():
        return "-"
    bound = ">= " if baseline.isna().any() else ""
    return f"{bound}{ratios.mean():.1f}x [{ratios.min():.1f}, {ratios.max():.1f}]"


def main(reports: list[str]) -> None:
    """Print the table as markdown from ``target=runs.csv`` arguments."""
    tables = []
    for argument in reports:
        target, path = argument.split("=", 1)
        table = pd.read_csv(path)
        tables.append(table[table["callbacks.target_stop.accuracy"] == float(target)])
    runs = pd.concat(tables, ignore_index=True)
    runs = runs[runs["status"] == "completed"]
    cap = int(runs["rounds_completed"].max())
    keys = ["algorithm", "schedule.local_epochs", "schedule.batch_size"]
    partitions = sorted(runs["dataset.partition.method"].unique())
    by_seed = runs.set_index([*keys, "dataset.partition.method", "schedule.seed"])
    by_seed = by_seed["rounds_to_target"].sort_index()
    targets = runs.groupby("dataset.partition.method")["callbacks.target_stop.accuracy"].first()
    lines = ["| method | E | B | u | " + " | ".join(
        f"{p}: rounds to {targets[p]:g} | {p}: speedup" for p in partitions) + " |",
        "|---|---|---|---|" + "---|---|" * len(partitions)]
    rows = runs[keys].drop_duplicates()
    rows = rows.assign(_order=(rows["algorithm"] != "fedsgd").astype(int)
                       * rows["schedule.local_epochs"] * DIGITS_PER_CLIENT
                       / rows["schedule.batch_size"].clip(upper=DIGITS_PER_CLIENT))
    for _, row in rows.sort_values("_order").iterrows():
        cells = []
        for partition in partitions:
            key = tuple(row[keys]) + (partition,)
            if key not in by_seed.index.droplevel("schedule.seed"):
                cells += ["not run", "-"]
                continue
            rounds = by_seed.loc[key].sort_index()
            sgd = runs[(runs["algorithm"] == "fedsgd")
                       & (runs["dataset.partition.method"] == partition)]
            baseline = sgd.set_index("schedule.seed")["rounds_to_target"].reindex(rounds.index)
            cells += [rounds_text(rounds, cap),
                      "(baseline)" if row["algorithm"] == "fedsgd"
                      else speedup_text(baseline, rounds, cap)]
        label = row_label(row["algorithm"], int(row["schedule.local_epochs"]),
                          int(row["schedule.batch_size"]))
        lines.append("| " + " | ".join([*label, *cells]) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
