"""``report.md``: the summary, the paired comparisons and their family, the plots, the runs."""

from pathlib import Path

import pandas as pd

from fedlab.report.collect import label
from fedlab.report.methods import MethodPairing
from fedlab.report.stats import ALPHA, CONFIDENCE, family
from fedlab.runs.figures import LAST_K


def _mean_std(summary: pd.DataFrame, figure: str, digits: int) -> pd.Series:
    mean, std = summary[f"{figure}_mean"], summary[f"{figure}_std"]
    return mean.map(lambda m: f"{m:.{digits}f}" if pd.notna(m) else "—") + std.map(
        lambda s: f" ± {s:.{digits}f}" if pd.notna(s) else "")


def readable_summary(summary: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """The summary as 'mean ± std' strings, for printing and markdown.

    Args:
      summary: :func:`fedlab.report.stats.summarize`'s table.
      group_columns: the columns that define a group.

    Returns:
      One row per group; columns for the figures these runs have.
    """
    table = summary[group_columns or ["group"]].copy()
    table["final eval acc"] = _mean_std(summary, "final_eval_accuracy", 4)
    table["last-k eval acc"] = _mean_std(summary, "final_eval_accuracy_last_k", 4)
    if summary["best_val_accuracy_mean"].notna().any():
        table["final val acc"] = _mean_std(summary, "final_val_accuracy", 4)
        table["eval acc at best val"] = _mean_std(summary, "eval_accuracy_at_best_val", 4)
    if summary["best_eval_accuracy_mean"].notna().any():
        table["best eval acc"] = _mean_std(summary, "best_eval_accuracy", 4)
    table["final eval loss"] = _mean_std(summary, "final_eval_loss", 4)
    table["uploaded MiB"] = _mean_std(summary, "uploaded_MiB", 1)
    table["rounds to target"] = _mean_std(summary, "rounds_to_target", 1)
    table["train s"] = _mean_std(summary, "training_seconds", 1)
    if summary["dp_epsilon_mean"].notna().any():
        table["epsilon"] = _mean_std(summary, "dp_epsilon", 2)
    if summary["sim_seconds_total_mean"].notna().any():
        table["sim s to target"] = _mean_std(summary, "sim_seconds_to_target", 0)
        table["sim s total"] = _mean_std(summary, "sim_seconds_total", 0)
    if summary["final_client_accuracy_p10_mean"].notna().any():
        table["client acc mean"] = _mean_std(summary, "final_client_accuracy_mean", 4)
        table["client acc p10"] = _mean_std(summary, "final_client_accuracy_p10", 4)
    table["n"] = summary["n"].astype(int)
    table["pareto front"] = summary["pareto_front"]
    return table


def family_line(paired: pd.DataFrame) -> str:
    """The sentence that states the family Holm's correction was applied over.

    Args:
      paired: a corrected paired table (with ``p_holm``).

    Returns:
      One paragraph.
    """
    members = family(paired)
    if not members["size"]:
        return ("No comparison has 3 or more pairs whose differences vary: nothing to test, so "
                "no multiple-comparison correction.")
    figures = ", ".join(f"`{f}`" for f in members["figures"])
    return (f"**Multiple comparisons:** Holm's step-down correction over one family: the "
            f"{members['size']} comparisons of this table with n ≥ 3 pairs whose differences "
            f"vary ({members['pairs']} pair{'s' if members['pairs'] != 1 else ''} of levels or "
            f"methods × up to "
            f"{len(members['figures'])} figures: {figures}; constant differences, 'identical' "
            "or 'higher in all n pairs', are not tested). A difference is called only where "
            f"its Holm-adjusted p (`p_holm`) is below {ALPHA:.2f}, the family-wise error rate: "
            f"{members['significant']} of {members['size']}. The intervals are per comparison "
            f"({CONFIDENCE * 100:.0f} %); 'not after Holm' marks one that excludes 0 where the "
            "adjusted p is not below it.")


def _code(items) -> str:
    return ", ".join(f"`{i}`" for i in items) or "none"


def methods_section(pairing: MethodPairing) -> list[str]:
    """What the method pairing defined, the pairs it made and one line for those it could not.

    Args:
      pairing: :func:`fedlab.report.methods.method_comparisons`' result.

    Returns:
      Markdown lines.
    """
    source = (f"selected in {_code(pairing.selected_from)} and " if pairing.selected_from
              else "")
    paired_by = _code(pairing.seeds) if pairing.seeds else "their one run each"
    within = (f" within each level of the remaining factors ({_code(pairing.factors)})"
              if pairing.factors else "")
    lines = ["## Paired comparisons of methods", "",
             f"A method is {_code(pairing.keys)} with the settings tuned for it "
             f"({_code(pairing.tuned)}: {source}set per method, so they do not break the "
             f"pairing). Runs of two methods are paired by {paired_by}{within}; the difference "
             "is a - b, with a 95 % t confidence interval over the n pairs (fewer than 3 pairs "
             "give the differences, not an interval).", ""]
    settings = pairing.settings.copy()
    if len(settings.columns) > 1:
        lines += ["Methods and their settings:", "",
                  settings.fillna("—").to_markdown(index=False), ""]
    if len(pairing.pairs):
        lines += [f"Pairs made ({len(pairing.pairs)}):", "",
                  pairing.pairs.rename(columns={"n": "pairs of runs"})
                  .to_markdown(index=False), ""]
    notes = []
    if pairing.unpaired:
        examples = "; ".join(pairing.unpaired[:3]) + ("; ..." if len(pairing.unpaired) > 3
                                                      else "")
        notes.append(f"Could not pair {len(pairing.unpaired)} pair"
                     f"{'s' if len(pairing.unpaired) > 1 else ''} of methods (no seed in "
                     f"common, or a method without runs there): {examples}.")
    if pairing.left_out:
        notes.append(f"Left out {len(pairing.left_out)} completed run"
                     f"{'s' if len(pairing.left_out) > 1 else ''} not at their method's "
                     "selected setting.")
    if pairing.duplicates:
        notes.append(f"Left out {len(pairing.duplicates)} run"
                     f"{'s' if len(pairing.duplicates) > 1 else ''} repeating a method, "
                     "stratum and seed another run already has.")
    return lines + ([" ".join(notes), ""] if notes else [])


def write_markdown(out: Path, source: str, runs: pd.DataFrame, readable: pd.DataFrame,
                   plots: list[str], target_accuracy: float, group_columns: list[str],
                   paired: pd.DataFrame, warnings: list[str], last_k: int = LAST_K,
                   pairing: MethodPairing | None = None) -> None:
    """Write ``out/report.md``.

    Args:
      out: the report folder.
      source: where the runs came from ("Runs under: `multirun/x`").
      runs: one row per run.
      readable: :func:`readable_summary`'s table.
      plots: the plot file names.
      target_accuracy: the target of "rounds to target".
      group_columns: the columns that define a group.
      paired: the paired table (corrected when it has ``p_holm``).
      warnings: held-out set warnings.
      last_k: how many last evaluations "last-k" averages.
      pairing: the method pairing, with ``--method``.
    """
    lines = ["# fedlab report", "",
             f"{source}. "
             f"{(runs['status'] == 'completed').sum()} completed of {len(runs)}. "
             f"Accuracy is measured on held-out data; 'rounds to target' is the first round "
             f"with eval accuracy >= {target_accuracy} ('sim s to target': the simulated time "
             "when it was reached, runs with simulated clients). Mean ± std over seeds. "
             f"'last {last_k}': the mean of a run's last {last_k} evaluations; 'se': the "
             "binomial standard error of its final accuracy on the held-out set. 'eval' "
             "figures are on the test set, 'val' figures on the validation set (runs with "
             "dataset.validation_fraction > 0, whose 'best' is chosen on validation: 'eval acc "
             "at best val' is the test accuracy at the best validation round).", ""]
    lines += [f"**Warning: {w}.**" for w in warnings] + ([""] if warnings else [])
    if len(readable):
        lines += ["## Summary", "", readable.to_markdown(index=False), ""]
        front = readable[readable["pareto front"]]
        lines += ["Accuracy-vs-upload Pareto front (no other group uploads less and is at "
                  "least as accurate): "
                  + "; ".join(label(row, group_columns) for _, row in front.iterrows()), ""]
    corrected = "p_holm" in paired
    shown = ["factor", "within", "a", "b", "metric", "n", "verdict"]
    if pairing is not None:
        lines += methods_section(pairing)
        shown.remove("factor")
    elif len(paired):
        lines += ["## Paired comparisons", "",
                  "Runs that agree on every other setting (seed included) are paired; the "
                  "difference is a - b, with a 95 % t confidence interval over the n pairs "
                  "('within': the pairs of one level of another factor only; 'pooled over': "
                  "pairs from every level of the others, on request). Fewer than 3 pairs "
                  "give the differences, not an interval.", ""]
    if len(paired):
        if corrected:
            lines += [family_line(paired), ""]
            paired = paired.assign(p_holm=paired["p_holm"].map(
                lambda p: f"{p:.2g}" if pd.notna(p) else ""))
            shown.insert(-1, "p_holm")
        if pairing is not None and not pairing.factors:
            shown.remove("within")
        lines += [paired[shown].fillna("").to_markdown(index=False), ""]
    lines += [f"![{p}]({p})" for p in plots] + [""]
    columns = ["run", "status", *group_columns, "final_eval_accuracy", "final_eval_accuracy_se",
               "final_eval_accuracy_last_k", "uploaded_MiB", "note"]
    columns = [c for c in columns if c in runs]
    lines += ["## Runs", "", runs[columns].to_markdown(index=False, floatfmt=".4f"), ""]
    (out / "report.md").write_text("\n".join(lines))
