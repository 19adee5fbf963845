"""``python -m fedlab.select``: one setting per method, chosen on validation only."""

import json

import pandas as pd
import pytest
import yaml
from conftest import run_cli

from fedlab.report import cli, select


def tuning_run(folder, algorithm, client_lr, server_lr, val, test, seed=0, status="completed",
               extra=None):
    """A tuning run folder as fedlab writes it, with chosen validation and test accuracies."""
    (folder / ".hydra").mkdir(parents=True)
    config = {"algorithm": {"_target_": f"fedlab.algorithms.{algorithm}", **(extra or {})},
              "optimizer": {"client": {"learning_rate": client_lr},
                            "server": {"learning_rate": server_lr}},
              "schedule": {"seed": seed}, "run_dir": str(folder)}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"algorithm": algorithm}}}}))
    rounds = range(1, len(val) + 1)
    pd.DataFrame({"round": list(rounds), "train_loss": 1.0, "eval_accuracy": test,
                  "eval_loss": 1.0, "bits_up_cumulative": 8, "val_accuracy": val}
                 ).to_csv(folder / "metrics.csv", index=False)
    (folder / "summary.json").write_text(json.dumps({"status": status}))
    overrides = ["+experiment=algorithms_tuning", f"algorithm={algorithm}",
                 *[f"algorithm.{k}={v}" for k, v in (extra or {}).items()],
                 f"optimizer.client.learning_rate={client_lr}",
                 f"optimizer.server.learning_rate={server_lr}", f"schedule.seed={seed}"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))


def grid(root, algorithm, scores, extra=None, seeds=(0,)):
    """One run per (client lr, server lr) -> (validation, test) final accuracies."""
    for (client_lr, server_lr), (val, test) in scores.items():
        for seed in seeds:
            tuning_run(root / f"{algorithm}-{client_lr}-{server_lr}-{seed}", algorithm,
                       client_lr, server_lr, [0.1, 0.2, val], [0.1, 0.2, test], seed,
                       extra=extra)


def test_each_method_gets_its_best_validation_setting_never_the_test_sets(tmp_path):
    # On the test set fedavg's best would be client lr 0.3; on validation it is 0.1.
    grid(tmp_path, "fedavg", {(0.03, 1.0): (0.50, 0.50), (0.1, 1.0): (0.80, 0.70),
                              (0.3, 1.0): (0.70, 0.90)})
    grid(tmp_path, "fedprox", {(0.03, 1.0): (0.60, 0.95), (0.1, 1.0): (0.55, 0.60),
                               (0.3, 1.0): (0.50, 0.60)}, extra={"proximal_strength": 0.1})
    out = tmp_path / "selection"
    assert select.main([str(tmp_path), "--per", "algorithm", "--last-k", "1",
                        "--out", str(out)]) == 0
    chosen = pd.read_csv(out / "selected.csv").set_index("algorithm")
    assert chosen.loc["fedavg", "optimizer.client.learning_rate"] == 0.1
    assert chosen.loc["fedavg", select.SCORE] == pytest.approx(0.80)
    assert chosen.loc["fedavg", "runner_up_" + select.SCORE] == pytest.approx(0.70)
    assert chosen.loc["fedprox", "optimizer.client.learning_rate"] == 0.03
    assert chosen.loc["fedprox", "on_grid_edge"] == "optimizer.client.learning_rate"
    assert pd.isna(chosen.loc["fedavg", "on_grid_edge"])
    assert chosen["settings_tried"].tolist() == [3, 3]  # the same budget for each method
    lines = (out / "selected_overrides.txt").read_text().splitlines()
    assert lines == [  # the selected runs' own overrides, without seed and experiment
        "algorithm=fedavg optimizer.client.learning_rate=0.1 optimizer.server.learning_rate=1.0",
        "algorithm=fedprox algorithm.proximal_strength=0.1 optimizer.client.learning_rate=0.03 "
        "optimizer.server.learning_rate=1.0"]
    assert len(pd.read_csv(out / "candidates.csv")) == 6


def test_the_score_is_the_last_k_validation_mean_over_seeds(tmp_path):
    # Last-2 means: a = (0.9 + 0.5) / 2 = 0.7 on seed 0, 0.6 on seed 1 -> 0.65; b = 0.66.
    tuning_run(tmp_path / "a0", "fedavg", 0.1, 1.0, [0.1, 0.9, 0.5], [0, 0, 0], seed=0)
    tuning_run(tmp_path / "a1", "fedavg", 0.1, 1.0, [0.1, 0.6, 0.6], [0, 0, 0], seed=1)
    tuning_run(tmp_path / "b0", "fedavg", 0.3, 1.0, [0.1, 0.66, 0.66], [0, 0, 0], seed=0)
    tuning_run(tmp_path / "b1", "fedavg", 0.3, 1.0, [0.1, 0.66, 0.66], [0, 0, 0], seed=1)
    out = tmp_path / "out"
    assert select.main([str(tmp_path), "--last-k", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "candidates.csv").set_index("optimizer.client.learning_rate")
    assert table.loc[0.1, select.SCORE] == pytest.approx(0.65)
    assert table.loc[0.3, select.SCORE] == pytest.approx(0.66)
    assert table["seeds"].tolist() == [2, 2]
    assert pd.read_csv(out / "selected.csv")["optimizer.client.learning_rate"].item() == 0.3


def test_a_setting_with_a_failed_seed_ranks_last(tmp_path):
    tuning_run(tmp_path / "a0", "fedavg", 0.3, 1.0, [0.9], [0.9], seed=0)
    tuning_run(tmp_path / "a1", "fedavg", 0.3, 1.0, [0.9], [0.9], seed=1, status="failed")
    tuning_run(tmp_path / "b0", "fedavg", 0.1, 1.0, [0.5], [0.5], seed=0)
    tuning_run(tmp_path / "b1", "fedavg", 0.1, 1.0, [0.5], [0.5], seed=1)
    assert select.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert pd.read_csv(tmp_path / "out" / "selected.csv")[
        "optimizer.client.learning_rate"].item() == 0.1


def test_runs_without_validation_are_refused_in_one_line(tmp_path, capsys):
    for lr in (0.1, 0.3):
        tuning_run(tmp_path / str(lr), "fedavg", lr, 1.0, [0.5], [0.5])
        metrics = pd.read_csv(tmp_path / str(lr) / "metrics.csv").drop(columns="val_accuracy")
        metrics.to_csv(tmp_path / str(lr) / "metrics.csv", index=False)
    assert select.main([str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "validation_fraction" in error
    assert select.main([str(tmp_path), "--per", "model"]) == 1
    assert "--per model" in capsys.readouterr().err


@pytest.mark.slow
def test_the_tuning_protocol_end_to_end_on_real_runs(tmp_path):
    # The algorithms study's tuning config, narrowed to two client learning rates and 2 rounds.
    result = run_cli("-m", "+experiment=algorithms_tuning", "algorithm=fedavg",
                     "dataset.num_clients=10", "schedule.rounds=2",
                     "schedule.clients_per_round=2", "schedule.local_epochs=1",
                     "optimizer.client.learning_rate=0.01,0.3",
                     "optimizer.server.learning_rate=1.0",
                     f"hydra.sweep.dir={tmp_path / 'tuning'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "selection"
    assert select.main([str(tmp_path / "tuning"), "--per", "algorithm", "--out", str(out)]) == 0
    runs = {lr: pd.read_csv(tmp_path / "tuning" / str(i) / "metrics.csv")
            for i, lr in enumerate((0.01, 0.3))}
    best = max(runs, key=lambda lr: runs[lr]["val_accuracy"].tail(3).mean())
    chosen = pd.read_csv(out / "selected.csv")
    assert chosen["optimizer.client.learning_rate"].item() == best
    overrides = (out / "selected_overrides.txt").read_text().split()
    assert {"algorithm=fedavg", f"optimizer.client.learning_rate={best}",
            "schedule.rounds=2"} <= set(overrides)
    assert not [o for o in overrides if o.startswith(("schedule.seed", "+experiment"))]


def test_rounds_to_a_target_on_validation_rank_fewer_first_ties_by_accuracy(tmp_path):
    # validation curves: (0.03) reaches 0.7 in round 3, (0.1) and (0.3) in round 2 -- (0.3)
    # ending higher; (1.0) never. The test set would favour 0.03 (first to 0.7 there).
    curves = {0.03: ([0.5, 0.6, 0.9], [0.7, 0.8, 0.9]), 0.1: ([0.5, 0.7, 0.75], [0.5, 0.6, 0.7]),
              0.3: ([0.5, 0.72, 0.8], [0.5, 0.6, 0.7]), 1.0: ([0.5, 0.6, 0.65], [0.9, 0.9, 0.9])}
    for lr, (val, test) in curves.items():
        tuning_run(tmp_path / f"fedsgd-{lr}", "fedsgd", lr, 1.0, val, test)
    out = tmp_path / "selection"
    assert select.main([str(tmp_path), "--per", "algorithm", "--score", "val_rounds_to_target",
                        "--target-accuracy", "0.7", "--last-k", "1", "--out", str(out)]) == 0
    chosen = pd.read_csv(out / "selected.csv").set_index("algorithm")
    assert chosen.loc["fedsgd", "optimizer.client.learning_rate"] == 0.3
    assert chosen.loc["fedsgd", "val_rounds_to_target"] == 2
    assert chosen.loc["fedsgd", "runner_up_val_rounds_to_target"] == 2
    ranks = pd.read_csv(out / "candidates.csv").set_index("optimizer.client.learning_rate")
    assert ranks["rank"].to_dict() == {0.3: 1, 0.1: 2, 0.03: 3, 1.0: 4}


@pytest.mark.parametrize("arguments", [["--score", "val_rounds_to_target"],
                                       ["--target-accuracy", "0.7"]])
def test_a_target_goes_with_the_rounds_score_and_only_with_it(tmp_path, capsys, arguments):
    grid(tmp_path, "fedavg", {(0.03, 1.0): (0.5, 0.5), (0.1, 1.0): (0.8, 0.7)})
    assert select.main([str(tmp_path), "--per", "algorithm", *arguments]) == 1
    assert "--target-accuracy goes with --score val_rounds_to_target" in capsys.readouterr().err


def test_where_no_setting_reaches_the_target_accuracy_chooses_and_says_so(tmp_path, capsys):
    grid(tmp_path, "fedavg", {(0.03, 1.0): (0.5, 0.9), (0.1, 1.0): (0.6, 0.5)})
    out = tmp_path / "selection"
    assert select.main([str(tmp_path), "--per", "algorithm", "--score", "val_rounds_to_target",
                        "--target-accuracy", "0.7", "--last-k", "1", "--out", str(out)]) == 0
    chosen = pd.read_csv(out / "selected.csv").set_index("algorithm")
    assert chosen.loc["fedavg", "optimizer.client.learning_rate"] == 0.1
    assert chosen.loc["fedavg", "note"] == (
        "no setting reached the target in every seed: chosen by final_val_accuracy_last_k")
    assert "no setting reached the target" in capsys.readouterr().out


def test_the_report_pairs_the_selected_methods_by_seed(tmp_path):
    grid(tmp_path / "tuning", "fedavg", {(0.03, 1.0): (0.5, 0.5), (0.1, 1.0): (0.8, 0.7)})
    grid(tmp_path / "tuning", "fedprox", {(0.03, 1.0): (0.6, 0.6), (0.1, 1.0): (0.55, 0.9)},
         extra={"proximal_strength": 0.1})
    selection = tmp_path / "selection"
    assert select.main([str(tmp_path / "tuning"), "--per", "algorithm", "--last-k", "1",
                        "--out", str(selection)]) == 0
    assert pd.read_csv(selection / "selected.csv")["per"].tolist() == ["algorithm"] * 2
    # Test seeds at the selected rates (fedavg 0.1, fedprox 0.03), and one fedavg run at a rate
    # that was not selected.
    finals = {1: (0.80, 0.75), 2: (0.85, 0.77), 3: (0.90, 0.86)}  # seed: (fedavg, fedprox)
    for seed, (fedavg, fedprox) in finals.items():
        tuning_run(tmp_path / "test" / f"fedavg-{seed}", "fedavg", 0.1, 1.0, [0.5], [fedavg],
                   seed)
        tuning_run(tmp_path / "test" / f"fedprox-{seed}", "fedprox", 0.03, 1.0, [0.5],
                   [fedprox], seed, extra={"proximal_strength": 0.1})
    tuning_run(tmp_path / "test" / "fedavg-other", "fedavg", 0.03, 1.0, [0.5], [0.1], 1)
    out = tmp_path / "report"
    assert cli.main([str(tmp_path / "test"), "--selected", str(selection / "selected.csv"),
                     "--out", str(out)]) == 0
    paired = pd.read_csv(out / "paired.csv").set_index("metric")
    row = paired.loc["final_eval_accuracy"]
    assert (row["a"], row["b"]) == ("fedavg", "fedprox")
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx((0.05 + 0.08 + 0.04) / 3)
    page = (out / "report.md").read_text()
    assert "Left out 1 completed run not at their method's selected setting" in page
    # A selected.csv without the per column needs --method.
    old = pd.read_csv(selection / "selected.csv").drop(columns="per")
    old.to_csv(tmp_path / "old.csv", index=False)
    assert cli.main([str(tmp_path / "test"), "--selected", str(tmp_path / "old.csv")]) == 1
    assert cli.main([str(tmp_path / "test"), "--selected", str(tmp_path / "old.csv"),
                     "--method", "algorithm", "--out", str(tmp_path / "old")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "old" / "paired.csv"),
                                  pd.read_csv(out / "paired.csv"))


def test_average_over_a_factor_selects_one_setting_for_all_its_levels(tmp_path):
    """``--average-over partition``: the rate best on average over both partitions, not the
    best (partition, rate) pair; the test runs' overrides leave the partition to their sweep."""
    scores = {("c2", 0.01): 0.80, ("c2", 0.1): 0.60, ("dir", 0.01): 0.50, ("dir", 0.1): 0.75}
    for (partition, rate), val in scores.items():
        folder = tmp_path / f"{partition}-{rate}"
        tuning_run(folder, "fedavg", rate, 1.0, [0.1, val], [0.1, 0.9])
        config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        config["dataset"] = {"partition": {"method": {"c2": "label_quantity",
                                                      "dir": "label_dirichlet"}[partition]}}
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
            {"hydra": {"runtime": {"choices": {"algorithm": "fedavg", "partition": partition}}}}))
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        (folder / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([*overrides, f"partition={partition}"]))
    out = tmp_path / "out"
    # Without averaging, the best pair is (c2, 0.01): 0.80.
    assert select.main([str(tmp_path), "--per", "algorithm", "--last-k", "1",
                        "--out", str(out)]) == 0
    assert "partition=c2" in (out / "selected_overrides.txt").read_text()
    # Averaged: 0.01 -> (0.80 + 0.50) / 2 = 0.65 < 0.1 -> (0.60 + 0.75) / 2 = 0.675.
    assert select.main([str(tmp_path), "--per", "algorithm", "--average-over", "partition",
                        "--last-k", "1", "--out", str(out)]) == 0
    chosen = pd.read_csv(out / "selected.csv").iloc[0]
    assert chosen["optimizer.client.learning_rate"] == 0.1
    assert chosen[select.SCORE] == pytest.approx(0.675)
    assert chosen["averaged_over"] == "partition"
    assert (out / "selected_overrides.txt").read_text().split() == [
        "algorithm=fedavg", "optimizer.client.learning_rate=0.1",
        "optimizer.server.learning_rate=1.0"]
