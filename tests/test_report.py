"""The report command on fabricated runs (exact numbers), a real sweep, and bad folders."""

import ast
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_cli
from scipy import stats

import fedlab.report
from fedlab.report import cli, plots, samples
from fedlab.report import stats as report_stats

MIB = 8 * 2**20


def fabricate_run(folder, model, aggregator, seed, accuracies, upload_bits=MIB, status="completed",
                  columns=None, test_set="a" * 64, algorithm=None, summary_extra=None,
                  settings=None):
    """A run folder as fedlab writes it, with chosen eval accuracies per round."""
    (folder / ".hydra").mkdir(parents=True)
    config = {"model": {"_target_": f"fedlab.models.images.{model}"},
              "aggregator": {"_target_": aggregator}, "schedule": {"seed": seed, "rounds": 3},
              "run_dir": str(folder), **(settings or {})}
    choices = {"model": model, "aggregator": aggregator, "hydra/launcher": "basic"}
    if algorithm is not None:  # (option, {setting: value})
        config["algorithm"] = {"_target_": f"fedlab.algorithms.{algorithm[0]}", **algorithm[1]}
        choices["algorithm"] = algorithm[0]
        if seed == 0:  # a key some runs' fedlab version added, as an interpolation
            config["trainer"] = {"aggregator_name": "${aggregator._target_}"}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    rounds = range(1, len(accuracies) + 1)
    table = pd.DataFrame({
        "round": list(rounds), "train_loss": [1.0 / r for r in rounds],
        "eval_accuracy": accuracies, "eval_loss": [2.0 - a for a in accuracies],
        "bits_up_cumulative": [upload_bits * r for r in rounds],
        "bits_down_cumulative": [2 * upload_bits * r for r in rounds],
        "round_seconds": [0.5] * len(accuracies),
    })
    if columns is not None:
        table = table[columns]
    table.to_csv(folder / "metrics.csv", index=False)
    if status:
        (folder / "summary.json").write_text(json.dumps(
            {"status": status, **(summary_extra or {}),
             "provenance": {"test_set_sha256": test_set, "partition_sha256": f"p{seed}",
                            "git_commit": "c"}}))


def test_report_on_fabricated_runs_has_exact_figures(tmp_path):
    sweep = tmp_path / "sweep"
    fabricate_run(sweep / "0", "fedavg_cnn", "mean", 0, [0.5, 0.8, 0.9])
    fabricate_run(sweep / "1", "fedavg_cnn", "mean", 1, [0.6, 0.7, 0.7])
    fabricate_run(sweep / "2", "simple_cnn", "mean", 0, [0.3, 0.4, 0.5], upload_bits=MIB // 4)
    fabricate_run(sweep / "3", "simple_cnn", "mean", 1, [0.3, 0.4], status=None)  # crashed
    out = tmp_path / "out"
    assert cli.main([str(sweep), "--out", str(out), "--target-accuracy", "0.75"]) == 0

    runs = pd.read_csv(out / "runs.csv")
    assert "model" in runs and "schedule.seed" in runs and "aggregator" not in runs
    by_run = runs.set_index(runs["run"].str[-1])
    assert by_run.loc["0", "final_eval_accuracy"] == 0.9
    assert by_run.loc["0", "rounds_to_target"] == 2
    assert pd.isna(by_run.loc["1", "rounds_to_target"])
    assert by_run.loc["1", "best_eval_accuracy"] == 0.7
    assert by_run.loc["2", "uploaded_MiB"] == 0.75
    assert by_run.loc["3", "status"] == "incomplete"
    assert "stopped after round 2" in by_run.loc["3", "note"]

    summary = pd.read_csv(out / "summary.csv").set_index("model")
    assert summary.loc["fedavg_cnn", "n"] == 2
    assert summary.loc["fedavg_cnn", "final_eval_accuracy_mean"] == pytest.approx(0.8)
    assert summary.loc["fedavg_cnn", "final_eval_accuracy_std"] == pytest.approx(0.1414213, 1e-5)
    assert summary.loc["simple_cnn", "n"] == 1  # the crashed run is not averaged in
    for name in ("eval_accuracy.png", "train_loss.png", "accuracy_vs_upload.png", "report.md"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.md").read_text()
    assert "0.8000 ± 0.1414" in page and "![eval_accuracy.png](eval_accuracy.png)" in page


def test_last_k_means_and_sampling_errors_against_hand_computation(tmp_path):
    fabricate_run(tmp_path / "0", "fedavg_cnn", "mean", 0, [0.5, 0.8, 0.9, 0.6],
                  summary_extra=None)
    summary = json.loads((tmp_path / "0" / "summary.json").read_text())
    summary["provenance"]["held_out_predictions"] = 1000
    (tmp_path / "0" / "summary.json").write_text(json.dumps(summary))
    fabricate_run(tmp_path / "1", "fedavg_cnn", "mean", 1, [0.5, float("nan"), 0.7, float("nan")])
    for last_k, expected in ((3, (0.8 + 0.9 + 0.6) / 3), (2, (0.9 + 0.6) / 2), (1, 0.6)):
        out = tmp_path / f"out{last_k}"
        assert cli.main([str(tmp_path / "0"), str(tmp_path / "1"), "--out", str(out),
                            "--last-k", str(last_k)]) == 0
        runs = pd.read_csv(out / "runs.csv").set_index("schedule.seed")
        assert runs.loc[0, "final_eval_accuracy_last_k"] == pytest.approx(expected, abs=1e-12)
    assert runs.loc[0, "final_eval_accuracy_se"] == pytest.approx((0.6 * 0.4 / 1000) ** 0.5)
    assert np.isnan(runs.loc[1, "final_eval_accuracy_se"])  # no held_out_predictions recorded
    runs = pd.read_csv(tmp_path / "out2" / "runs.csv").set_index("schedule.seed")
    assert runs.loc[1, "final_eval_accuracy_last_k"] == pytest.approx(0.6)  # rounds 1 and 3
    assert "last 2" in (tmp_path / "out2" / "report.md").read_text()
    assert cli.main([str(tmp_path / "0"), "--last-k", "0"]) == 1


def test_runs_with_other_metric_columns_are_reported_incomplete(tmp_path):
    fabricate_run(tmp_path / "a", "simple_cnn", "mean", 0, [0.5, 0.6])
    fabricate_run(tmp_path / "b", "simple_cnn", "mean", 1, [0.5, 0.6],
                  columns=["round", "train_loss"])
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("status")
    assert "lacks eval_accuracy" in runs.loc["incomplete", "note"]


def test_failed_run_is_listed_as_failed(tmp_path):
    fabricate_run(tmp_path / "a", "simple_cnn", "mean", 0, [0.5])
    fabricate_run(tmp_path / "b", "simple_cnn", "mean", 1, [0.5], status="failed")
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "failed" in pd.read_csv(tmp_path / "out" / "runs.csv")["status"].tolist()


def test_folder_without_runs_is_one_clear_error(tmp_path, capsys):
    assert cli.main([str(tmp_path)]) == 1
    assert "error: no fedlab runs" in capsys.readouterr().err


def test_missing_folder_is_one_clear_error(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_report_on_a_real_two_run_sweep(tmp_path):
    result = run_cli("-m", "dataset=synthetic", "schedule=smoke", "model=simple_cnn",
                     "schedule.seed=0,1", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert cli.main([str(tmp_path / "multirun"), "--out", str(tmp_path / "out")]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert runs["status"].tolist() == ["completed", "completed"]
    assert sorted(runs["schedule.seed"]) == [0, 1]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["n"].tolist() == [2]


def test_samples_grid_is_drawn(tmp_path):
    assert cli.main(["--samples", "dataset=synthetic", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "samples.png").stat().st_size > 0


def test_text_samples_are_written_as_text_with_their_targets(tmp_path):
    assert cli.main(["--samples", "dataset=shakespeare", "dataset.plays=[macbeth]",
                        "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "samples.txt").read_text().splitlines()
    text, target = (ast.literal_eval(line.split(": ", 1)[1]) for line in lines[2:4])
    assert text.startswith("<bos>When shall we three meet again\nIn thunder")  # Macbeth, I.1
    assert text == "<bos>" + target  # a short speech: the targets are the inputs moved by one
    assert len([line for line in lines if "input :" in line]) == 25


def test_decoded_words_are_joined_by_spaces_and_characters_are_not():
    assert samples.decode_tokens(np.array([3, 1, 2, 0]), ["<pad>", "a", "b", "<bos>"]) == "<bos>ab"
    assert samples.decode_tokens(np.array([1, 2, 0]), ["<pad>", "how", "do"]) == "how do"


def paired_sweep(root, deltas, upload_bits=None):
    """Runs of models x aggregators x seeds whose accuracies differ by chosen paired deltas."""
    for seed, delta in enumerate(deltas):
        for model, base in (("fedavg_cnn", 0.8), ("simple_cnn", 0.7)):
            fabricate_run(root / f"{model}-mean-{seed}", model, "mean", seed,
                          [0.1, base + 0.01 * seed])
            fabricate_run(root / f"{model}-compression-{seed}", model, "compression", seed,
                          [0.1, base + 0.01 * seed - delta], upload_bits=upload_bits or MIB // 4)


def test_paired_comparisons_have_exact_means_and_t_intervals(tmp_path):
    deltas = [0.010, 0.012, 0.008, 0.011, 0.009]
    paired_sweep(tmp_path / "sweep", deltas)
    out = tmp_path / "out"
    assert cli.main([str(tmp_path / "sweep"), "--out", str(out),
                        "--target-accuracy", "0.5", "--pooled"]) == 0
    paired = pd.read_csv(out / "paired.csv")
    assert {"factor", "a", "b", "metric", "mean_diff", "ci_low", "ci_high", "n"} <= set(paired)
    pooled = paired[paired["within"] == "pooled over model"].set_index(["factor", "metric"])
    row = pooled.loc[("aggregator", "final_eval_accuracy")]
    assert (row["a"], row["b"]) == ("compression", "mean")
    differences = [-d for d in deltas] * 2  # compression - mean, paired by model and seed
    half = stats.t.ppf(0.975, 9) * pd.Series(differences).std() / 10 ** 0.5
    assert row["n"] == 10
    assert row["mean_diff"] == pytest.approx(-0.01)
    assert row["ci_low"] == pytest.approx(-0.01 - half) and row["ci_high"] == pytest.approx(
        -0.01 + half)
    assert row["verdict"].startswith("mean higher by 0.0100 ± ")
    assert row["sd_diff"] == pytest.approx(pd.Series(differences).std())
    upload = pooled.loc[("aggregator", "uploaded_MiB")]
    assert upload["mean_diff"] == pytest.approx(-1.5)  # 2 rounds x (0.25 - 1) MiB
    assert upload["verdict"] == "mean higher by 1.5000 in all 10 pairs"
    rounds = pooled.loc[("aggregator", "rounds_to_target")]
    assert rounds["verdict"] == "identical in all 10 pairs"
    # The same comparison within each model: 5 pairs each, the same deltas.
    within = paired[paired["within"] == "model=simple_cnn"].set_index("metric")
    assert within.loc["final_eval_accuracy", "n"] == 5
    assert within.loc["final_eval_accuracy", "mean_diff"] == pytest.approx(-0.01)
    page = (out / "report.md").read_text()
    assert "## Paired comparisons" in page and "mean higher by 0.0100 ± " in page
    # Without --pooled: only comparisons within one level of the other factor.
    assert cli.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "within")]) == 0
    default = pd.read_csv(tmp_path / "within" / "paired.csv")
    assert default["within"].notna().all()
    assert set(default["within"]) == {"model=fedavg_cnn", "model=simple_cnn",
                                      "aggregator=compression", "aggregator=mean"}
    # fedavg_cnn: the most accurate (mean) and, of the 0.5 MiB uploads, the best (compression).
    front = pd.read_csv(out / "summary.csv").set_index(["model", "aggregator"])["pareto_front"]
    assert front.to_dict() == {("fedavg_cnn", "compression"): True, ("fedavg_cnn", "mean"): True,
                               ("simple_cnn", "compression"): False,
                               ("simple_cnn", "mean"): False}


def test_dp_epsilon_reaches_the_runs_and_summary_tables(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, epsilon in enumerate([1.5, 2.5]):
        fabricate_run(sweep / f"dp{seed}", "simple_cnn", "dp", seed, [0.5, 0.6],
                      summary_extra={"dp_epsilon": epsilon})
        fabricate_run(sweep / f"mean{seed}", "simple_cnn", "mean", seed, [0.5, 0.7])
    out = tmp_path / "out"
    assert cli.main([str(sweep), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv").set_index("run")
    assert runs.loc[str(sweep / "dp1"), "dp_epsilon"] == 2.5
    assert pd.isna(runs.loc[str(sweep / "mean0"), "dp_epsilon"])
    summary = pd.read_csv(out / "summary.csv").set_index("aggregator")
    assert summary.loc["dp", "dp_epsilon_mean"] == pytest.approx(2.0)
    assert "epsilon" in (out / "report.md").read_text()


def test_a_difference_within_noise_is_not_called_a_difference(tmp_path):
    paired_sweep(tmp_path / "sweep", [0.02, -0.03, 0.01, -0.01, 0.005])
    assert cli.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    row = paired[paired["within"] == "model=fedavg_cnn"].set_index(["factor", "metric"]).loc[
        ("aggregator", "final_eval_accuracy")]
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"].startswith("no difference detected, n=5")


def test_fewer_than_three_pairs_give_differences_not_intervals(tmp_path):
    paired_sweep(tmp_path / "sweep", [0.02, 0.03])
    assert cli.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    row = paired[paired["within"] == "model=fedavg_cnn"].set_index(["factor", "metric"]).loc[
        ("aggregator", "final_eval_accuracy")]
    assert row["n"] == 2 and pd.isna(row["ci_low"]) and pd.isna(row["ci_high"])
    assert row["verdict"] == "n=2: differences -0.0200, -0.0300, no interval (fewer than 3 pairs)"


def test_factors_without_matching_runs_are_called_unpaired(tmp_path):
    fabricate_run(tmp_path / "a", "fedavg_cnn", "mean", 0, [0.5, 0.8])
    fabricate_run(tmp_path / "b", "simple_cnn", "mean", 1, [0.5, 0.7])
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    assert (paired["factor"] == "model").all() and (paired["n"] == 0).all()
    assert paired["verdict"].str.startswith("unpaired").all()


def test_pareto_front_marks_the_undominated_groups():
    front = report_stats.pareto_front(pd.Series([1.0, 2.0, 3.0, 2.0]),
                                      pd.Series([0.5, 0.9, 0.8, 0.6]))
    assert front.tolist() == [True, True, False, False]


def test_rounds_csv_and_load_runs_give_the_long_table(tmp_path):
    paired_sweep(tmp_path / "sweep", [0.01, 0.02])
    rounds = fedlab.report.load_runs(tmp_path / "sweep")
    assert len(rounds) == 8 * 2 and rounds["round"].tolist()[:2] == [1, 2]
    assert {"run", "status", "model", "aggregator", "schedule.seed", "eval_accuracy"} <= set(
        rounds)
    assert cli.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "rounds.csv")
    pd.testing.assert_frame_equal(written, rounds.reset_index(drop=True), check_dtype=False,
                                  check_exact=True)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert (runs["test_set_sha256"] == "a" * 64).all() and runs["partition_sha256"].nunique() == 2


def test_groups_mixing_held_out_sets_are_warned_about(tmp_path, capsys):
    fabricate_run(tmp_path / "a", "simple_cnn", "mean", 0, [0.5], test_set="a" * 64)
    fabricate_run(tmp_path / "b", "simple_cnn", "mean", 1, [0.6], test_set="b" * 64)
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "evaluated on 2 different held-out sets" in capsys.readouterr().err
    assert "different held-out sets" in (tmp_path / "out" / "report.md").read_text()
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["held_out_sets"].tolist() == [2]


def test_runs_without_upload_stay_on_the_upload_plot_as_a_reference(tmp_path, monkeypatch):
    fabricate_run(tmp_path / "fed", "simple_cnn", "mean", 0, [0.5, 0.6])
    fabricate_run(tmp_path / "central", "fedavg_cnn", "mean", 0, [0.7, 0.9], upload_bits=0)
    labels = []
    original = plots.plt.Axes.axhline

    def recording_axhline(self, y, *args, **kwargs):
        labels.append((kwargs.get("label"), y))
        return original(self, y, *args, **kwargs)

    monkeypatch.setattr(plots.plt.Axes, "axhline", recording_axhline)
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert len(labels) == 1 and "model=fedavg_cnn" in labels[0][0] and labels[0][1] == 0.9


def test_client_level_accuracy_is_reported_and_drawn(tmp_path):
    fabricate_run(tmp_path / "a", "simple_cnn", "mean", 0, [0.5, 0.6])
    fabricate_run(tmp_path / "b", "simple_cnn", "mean", 1, [0.5, 0.7])
    for name, p10 in (("a", 0.2), ("b", 0.4)):
        table = pd.read_csv(tmp_path / name / "metrics.csv")
        table["client_accuracy_mean"] = [0.4, 0.55]
        table["client_accuracy_p10"] = [0.1, p10]
        table.to_csv(tmp_path / name / "metrics.csv", index=False)
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(runs["final_client_accuracy_p10"]) == [0.2, 0.4]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["final_client_accuracy_p10_mean"].tolist() == [pytest.approx(0.3)]
    assert (tmp_path / "out" / "client_accuracy.png").stat().st_size > 0
    assert "client acc p10" in (tmp_path / "out" / "report.md").read_text()


def test_a_groups_own_settings_are_part_of_its_level(tmp_path):
    options = {"fedavg": ("fedavg", {}), "mu1": ("fedprox", {"proximal_strength": 0.01}),
               "mu2": ("fedprox", {"proximal_strength": 0.1})}
    final = {"fedavg": 0.80, "mu1": 0.78, "mu2": 0.75}
    for seed in range(3):
        for name, algorithm in options.items():
            fabricate_run(tmp_path / f"{name}-{seed}", "simple_cnn", "mean", seed,
                          [0.5, final[name] + 0.01 * seed], algorithm=algorithm)
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    accuracy = paired[(paired["metric"] == "final_eval_accuracy") & paired["within"].isna()]
    assert set(accuracy["factor"]) == {"algorithm"}
    row = accuracy.set_index(["a", "b"]).loc[("fedavg", "fedprox (proximal_strength=0.1)")]
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(0.05)
    assert len(accuracy) == 3  # every pair of the three levels, each paired by seed


def test_dp_runs_get_epsilon_in_runs_csv_and_an_accuracy_vs_epsilon_plot(tmp_path):
    fabricate_run(tmp_path / "dp", "simple_cnn", "dp", 0, [0.4, 0.5])
    fabricate_run(tmp_path / "mean", "simple_cnn", "mean", 0, [0.5, 0.6])
    table = pd.read_csv(tmp_path / "dp" / "metrics.csv").assign(dp_epsilon=[1.5, 2.5])
    table.to_csv(tmp_path / "dp" / "metrics.csv", index=False)
    summary = json.loads((tmp_path / "dp" / "summary.json").read_text())
    (tmp_path / "dp" / "summary.json").write_text(json.dumps({**summary, "dp_epsilon": 2.5}))
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("aggregator")
    assert runs.loc["dp", "dp_epsilon"] == 2.5 and pd.isna(runs.loc["mean", "dp_epsilon"])
    assert (tmp_path / "out" / "accuracy_vs_epsilon.png").stat().st_size > 0


def test_simulated_time_gives_time_to_target_and_an_accuracy_vs_time_plot(tmp_path):
    sweep = tmp_path / "sweep"
    for index, (aggregator, seconds) in enumerate([("mean", 10.0), ("compression", 4.0)]):
        fabricate_run(sweep / str(index), "simple_cnn", aggregator, 0, [0.5, 0.8, 0.9])
        table = pd.read_csv(sweep / str(index) / "metrics.csv")
        table["sim_seconds_cumulative"] = seconds * table["round"]
        table.to_csv(sweep / str(index) / "metrics.csv", index=False)
    fabricate_run(sweep / "2", "simple_cnn", "robust", 0, [0.5, 0.6, 0.7])  # no simulated time
    out = tmp_path / "out"
    assert cli.main([str(sweep), "--out", str(out), "--target-accuracy", "0.8"]) == 0
    runs = pd.read_csv(out / "runs.csv").set_index("aggregator")
    assert runs.loc["mean", "sim_seconds_to_target"] == 20.0
    assert runs.loc["compression", "sim_seconds_to_target"] == 8.0
    assert runs.loc["compression", "sim_seconds_total"] == 12.0
    assert pd.isna(runs.loc["robust", "sim_seconds_to_target"])
    assert (out / "accuracy_vs_sim_time.png").stat().st_size > 0
    assert "sim s to target" in (out / "report.md").read_text()


def test_a_key_only_newer_runs_have_does_not_split_a_group(tmp_path):
    for seed in (0, 1, 2):
        fabricate_run(tmp_path / str(seed), "simple_cnn", "mean", seed, [0.5, 0.6 + seed / 100])
    config_path = tmp_path / "2" / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.update(logger=None, dataset={"validation_fraction": 0.0},  # a later fedlab's keys
                  callbacks={"validation_evaluation": {"split": "validation"}})
    config_path.write_text(yaml.safe_dump(config))
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(summary) == 1 and summary["n"].iloc[0] == 3
    # A key whose present values differ still makes groups.
    config.update(dataset={"validation_fraction": 0.1})
    config_path.write_text(yaml.safe_dump(config))
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out2")]) == 0
    assert sorted(pd.read_csv(tmp_path / "out2" / "summary.csv")["n"]) == [1, 2]


def test_holm_adjusted_p_values_equal_a_hand_computation():
    # m = 4 (the NaN is no member): sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005 = 0.02,
    # 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06.
    adjusted = report_stats.holm([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])
    np.testing.assert_allclose(report_stats.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    test = report_stats.paired_t_test([0.02, 0.012, 0.03, 0.0, 0.018])
    assert test.p == pytest.approx(stats.ttest_1samp([0.02, 0.012, 0.03, 0.0, 0.018], 0).pvalue)


def test_the_paired_table_is_holm_corrected_over_what_it_shows_unless_told_not_to(tmp_path):
    deltas = [0.02, 0.012, 0.03, 0.0, 0.018]  # p = 0.032 per comparison
    paired_sweep(tmp_path / "sweep", deltas)
    out = tmp_path / "out"
    assert cli.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    paired = pd.read_csv(out / "paired.csv")
    assert {"p_value", "p_holm", "significant_holm"} <= set(paired)
    tested = paired[paired["p_value"].notna()]
    # The family: compression - mean within each model, final and last-k accuracy (4); the
    # model and upload differences are constant across seeds: reported, not tested.
    assert len(tested) == 4 and set(tested["factor"]) == {"aggregator"}
    p = stats.ttest_rel([0.8 + 0.01 * s - d for s, d in enumerate(deltas)],
                        [0.8 + 0.01 * s for s in range(5)]).pvalue
    assert tested["p_value"].tolist() == pytest.approx([p] * 4, rel=1e-6)
    assert tested["p_holm"].tolist() == pytest.approx([4 * p] * 4, rel=1e-6)  # all four tie
    assert not tested["significant_holm"].astype(bool).any()
    row = tested.set_index(["within", "metric"]).loc[("model=fedavg_cnn", "final_eval_accuracy")]
    assert row["verdict"].startswith("not after Holm: mean higher by 0.0160 ± ")
    constant = paired[paired["metric"] == "uploaded_MiB"]
    assert constant["p_value"].isna().all() and constant["p_holm"].isna().all()
    page = (out / "report.md").read_text()
    assert "the 4 comparisons of this table" in page and "`final_eval_accuracy_last_k`" in page
    # --no-correction: the table as it was, per-comparison verdicts, no p columns.
    plain = tmp_path / "plain"
    assert cli.main([str(tmp_path / "sweep"), "--out", str(plain), "--no-correction"]) == 0
    old = pd.read_csv(plain / "paired.csv")
    assert old.columns.tolist() == ["factor", "within", "a", "b", "metric", "mean_diff",
                                    "ci_low", "ci_high", "n", "sd_diff", "verdict"]
    pd.testing.assert_frame_equal(old.drop(columns="verdict"),
                                  paired[old.columns].drop(columns="verdict"))
    row = old.set_index(["within", "metric"]).loc[("model=fedavg_cnn", "final_eval_accuracy")]
    half = row["ci_high"] - row["mean_diff"]
    assert row["verdict"] == f"mean higher by 0.0160 ± {half:.4f} (n=5)"
    assert "Holm" not in (plain / "report.md").read_text()


def method_runs(root):
    """fedavg (client lr 0.1) and scaffold (client lr 0.03) on 2 models x 4 seeds; fedprox on
    other seeds of one model only."""
    deltas = [0.05, 0.07, 0.04, 0.08]  # fedavg - scaffold per seed
    for seed, delta in enumerate(deltas):
        for model, base in (("fedavg_cnn", 0.8), ("simple_cnn", 0.7)):
            for name, lr, accuracy in (("fedavg", 0.1, base), ("scaffold", 0.03, base - delta)):
                fabricate_run(root / f"{name}-{model}-{seed}", model, "mean", seed,
                              [0.1, accuracy + 0.01 * seed], algorithm=(name, {}),
                              settings={"optimizer": {"client": {"learning_rate": lr}}})
    for seed in (7, 8):
        fabricate_run(root / f"fedprox-{seed}", "simple_cnn", "mean", seed, [0.1, 0.5],
                      algorithm=("fedprox", {}),
                      settings={"optimizer": {"client": {"learning_rate": 0.3}}})
    return deltas


def test_methods_at_their_own_tuned_rates_are_paired_by_seed(tmp_path):
    deltas = method_runs(tmp_path / "runs")
    # As settings, the learning rate is a factor of its own: no fedavg run agrees with a
    # scaffold run on it, so the algorithms are never paired.
    assert cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "settings")]) == 0
    settings = pd.read_csv(tmp_path / "settings" / "paired.csv")
    assert (settings.loc[settings["factor"] == "algorithm", "n"] == 0).all()
    out = tmp_path / "out"
    assert cli.main([str(tmp_path / "runs"), "--method", "algorithm", "--out", str(out)]) == 0
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["factor"]) == {"algorithm"} and (paired["n"] > 0).all()  # no unpaired rows
    accuracy = paired[paired["metric"] == "final_eval_accuracy"].set_index("within")
    assert accuracy["a"].tolist() == ["fedavg"] * 2 and accuracy["b"].tolist() == ["scaffold"] * 2
    for within in ("model=fedavg_cnn", "model=simple_cnn"):  # pairs by seed within each model
        assert accuracy.loc[within, "n"] == 4
        assert accuracy.loc[within, "mean_diff"] == pytest.approx(np.mean(deltas))
        assert accuracy.loc[within, "sd_diff"] == pytest.approx(np.std(deltas, ddof=1))
    page = (out / "report.md").read_text()
    assert "`optimizer.client.learning_rate`" in page and "Pairs made (2)" in page
    unpaired = [line for line in page.splitlines() if "Could not pair" in line]
    assert len(unpaired) == 1 and unpaired[0].startswith("Could not pair 4 pairs of methods")
    assert "unpaired" not in page
    # The same pairs from the runs table alone.
    again = tmp_path / "from_runs"
    assert cli.main(["--from-runs", str(out / "runs.csv"), "--method", "algorithm",
                     "--out", str(again)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(again / "paired.csv"), paired)
    assert (again / "eval_accuracy.png").exists()  # from the rounds.csv beside the runs.csv
    assert cli.main([str(tmp_path / "runs"), "--method", "optimizer"]) == 1
    assert cli.main([str(tmp_path / "runs"), "--method", "algorithm", "--pooled"]) == 1


def test_plot_labels_name_only_the_keys_that_tell_groups_apart():
    firsts = pd.DataFrame({"algorithm": ["fedavg", "fedprox", "fedprox"],
                           "algorithm.proximal_strength": [np.nan, 0.01, 0.1],
                           "optimizer.client.learning_rate": [0.3, 0.1, 0.1],
                           "optimizer.server.learning_rate": [1.0, 0.3, 0.3]})
    assert plots.short_labels(firsts, list(firsts.columns)) == [
        "algorithm=fedavg", "algorithm=fedprox, proximal_strength=0.01",
        "algorithm=fedprox, proximal_strength=0.1"]
    assert plots.short_keys(list(firsts.columns))["optimizer.client.learning_rate"] == (
        "client.learning_rate")


def test_bands_are_t_intervals_of_the_mean_clipped_to_the_metric_range():
    values = pd.DataFrame({"round": [1, 1, 1, 2, 2], "eval_accuracy": [0.90, 0.95, 1.0, 0.5, 0.6]})
    band = plots.mean_band(values, "round", "eval_accuracy", 0, 1)
    half = stats.t.ppf(0.975, 2) * np.std([0.90, 0.95, 1.0], ddof=1) / np.sqrt(3)
    assert band.loc[1, "low"] == pytest.approx(0.95 - half)
    assert band.loc[1, "high"] == 1.0  # 0.95 + half, clipped
    assert np.isnan(band.loc[2, "low"]) and np.isnan(band.loc[2, "high"])  # 2 runs: no band


def test_a_report_from_its_runs_and_rounds_csv_equals_the_report_from_the_run_folders(
        tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        fabricate_run(sweep / f"mean{seed}", "simple_cnn", "mean", seed,
                      [0.3, 0.6, 0.7 + seed / 100])
        fabricate_run(sweep / f"dp{seed}", "simple_cnn", "dp", seed, [0.2, 0.4, 0.5 + seed / 50],
                      settings={"optimizer": {"client": {"learning_rate": 0.23212864372414546}}})
        table = pd.read_csv(sweep / f"dp{seed}" / "metrics.csv")  # a column only DP runs have
        table.assign(dp_epsilon=[1.0, 2.0, np.inf]).to_csv(sweep / f"dp{seed}" / "metrics.csv",
                                                           index=False)
    fabricate_run(sweep / "crashed", "simple_cnn", "mean", 3, [0.3], status=None)
    drawn = []
    draw = plots.plot_groups
    monkeypatch.setattr(plots, "plot_groups", lambda runs, metrics, *rest: drawn.append(
        metrics) or draw(runs, metrics, *rest))
    folders, tables = tmp_path / "folders", tmp_path / "tables"
    assert cli.main([str(sweep), "--out", str(folders), "--target-accuracy", "0.6"]) == 0
    assert cli.main(["--from-runs", str(folders / "runs.csv"), "--out", str(tables),
                     "--target-accuracy", "0.6"]) == 0
    for name in ("summary.csv", "paired.csv"):  # to the last digit (pandas' default parser
        assert (tables / name).read_text() == (folders / name).read_text()  # drops one of 0.23…)
    assert {p.name for p in tables.glob("*.png")} == {p.name for p in folders.glob("*.png")} == {
        "eval_accuracy.png", "train_loss.png", "accuracy_vs_upload.png",
        "accuracy_vs_epsilon.png"}
    assert not (tables / "runs.csv").exists() and not (tables / "rounds.csv").exists()
    from_folders, from_tables = drawn  # the same per-run tables reach the same plotting code
    assert from_tables.keys() == from_folders.keys() and len(from_tables) == 6
    for run, table in from_folders.items():
        pd.testing.assert_frame_equal(from_tables[run], table, check_dtype=False)
    images = [line for line in (tables / "report.md").read_text().splitlines() if "![" in line]
    assert images == [line for line in (folders / "report.md").read_text().splitlines()
                      if "![" in line]
    # An explicit rounds.csv; one that is not these runs' is refused.
    elsewhere = tmp_path / "elsewhere.csv"
    (folders / "rounds.csv").rename(elsewhere)
    assert cli.main(["--from-runs", str(folders / "runs.csv"), "--from-rounds", str(elsewhere),
                     "--out", str(tmp_path / "explicit")]) == 0
    assert (tmp_path / "explicit" / "accuracy_vs_epsilon.png").exists()
    pd.read_csv(elsewhere).query("run.str.endswith('mean0')").to_csv(elsewhere, index=False)
    assert cli.main(["--from-runs", str(folders / "runs.csv"), "--from-rounds",
                     str(elsewhere)]) == 1
    assert cli.main(["--from-rounds", str(elsewhere)]) == 1


def test_labels_keep_the_method_and_more_than_six_groups_get_one_panel_per_level():
    """McMahan et al.'s Table 2 grid: FedSGD and FedAvg settings on IID and shards, a stopping
    target per partition."""
    rows = [(algorithm, partition, target, batch, epochs)
            for partition, target in (("iid", 0.92), ("shards", 0.88))
            for algorithm, batch, epochs in (("fedavg", 10, 1), ("fedavg", 10, 5),
                                             ("fedavg", 10, 20), ("fedavg", 1000, 5),
                                             ("fedsgd", 20, 1))]
    firsts = pd.DataFrame(rows, columns=["algorithm", "dataset.partition.method",
                                         "callbacks.target_stop.accuracy",
                                         "schedule.batch_size", "schedule.local_epochs"])
    columns = list(firsts.columns)
    assert plots.label_columns(firsts, columns) == [  # the method named, the callback not
        "algorithm", "dataset.partition.method", "schedule.batch_size", "schedule.local_epochs"]
    assert plots.short_labels(firsts, columns)[4] == (
        "algorithm=fedsgd, partition.method=iid, batch_size=20, local_epochs=1")
    panels, labels = plots.facets(firsts, columns)
    assert panels == ["partition.method=iid"] * 5 + ["partition.method=shards"] * 5
    assert labels[:5] == labels[5:] and len(set(labels)) == 5
    assert labels[0] == "algorithm=fedavg, batch_size=10, local_epochs=1"
    assert plots.facets(firsts.iloc[:5], columns)[0] == [""] * 5  # few groups: one panel
