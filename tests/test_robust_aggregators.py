"""The robust aggregators against NumPy implementations of their papers, on hand-made updates."""

import collections

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.aggregators.centered_clipping import centered_clipping_aggregator
from fedlab.aggregators.geometric_median import geometric_median_aggregator
from fedlab.aggregators.krum import krum_aggregator, krum_scores, multi_krum_aggregator
from fedlab.aggregators.median import median_aggregator
from fedlab.aggregators.trimmed_mean import trimmed_mean_aggregator
from fedlab.clients.communication import measure_round_communication
from fedlab.errors import ConfigError
from fedlab.executors import contexts

VALUE_TYPE = tff.to_type(collections.OrderedDict(
    kernel=tff.TensorType(np.float32, [2, 3]), bias=tff.TensorType(np.float32, [4])))
WIDTH = 10


def hand_made_updates(clients: int, seed: int = 0) -> np.ndarray:
    """``clients`` honest-looking rows and two far-off ones (the attackers), float32."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.5, 0.2, (clients, WIDTH)).astype(np.float32)
    rows[1] = -8.0 * rows[1]  # sign flipped and boosted
    rows[-1] = rng.normal(0, 5.0, WIDTH).astype(np.float32)  # noise
    return rows


def as_structures(rows: np.ndarray) -> list:
    """The rows as the update structure the aggregator takes."""
    return [collections.OrderedDict(kernel=r[:6].reshape(2, 3), bias=r[6:]) for r in rows]


def aggregate_rounds(factory, rounds: list[np.ndarray], weights=None, tmp_path=None) -> list:
    """Run ``factory``'s process over ``rounds`` of rows; each round's aggregate as a vector."""
    process = factory.create(VALUE_TYPE, tff.TensorType(np.float32))
    outputs = []
    with contexts.local_execution(tmp_path / "worker.log"):
        state = process.initialize()
        for rows in rounds:
            w = np.ones(len(rows), np.float32) if weights is None else weights
            output = process.next(state, as_structures(rows), list(w))
            state = output.state
            outputs.append(np.concatenate([np.asarray(output.result["kernel"]).ravel(),
                                           np.asarray(output.result["bias"])]))
    return outputs


def numpy_krum(rows: np.ndarray, byzantine: int, selected: int) -> np.ndarray:
    """Blanchard et al.: scores over the n - f - 2 nearest, mean of the m lowest."""
    rows64 = rows.astype(np.float64)
    n = len(rows)
    distances = ((rows64[:, None, :] - rows64[None, :, :]) ** 2).sum(-1)
    scores = [np.sort(np.delete(distances[i], i))[: n - byzantine - 2].sum() for i in range(n)]
    chosen = np.argsort(scores, kind="stable")[:selected]
    return rows[chosen].mean(axis=0)


def numpy_weiszfeld(rows: np.ndarray, weights: np.ndarray, iterations: int,
                    smoothing: float) -> np.ndarray:
    """RFA's smoothed Weiszfeld from the weighted mean."""
    rows64, alphas = rows.astype(np.float64), weights / weights.sum()
    median = alphas @ rows64
    for _ in range(iterations):
        betas = alphas / np.maximum(smoothing, np.linalg.norm(rows64 - median, axis=1))
        median = betas @ rows64 / betas.sum()
    return median


def numpy_centered_clipping(rounds: list[np.ndarray], radius: float, iterations: int) -> list:
    """Karimireddy et al.'s centered clipping, each round from the previous aggregate."""
    center, outputs = np.zeros(WIDTH), []
    for rows in rounds:
        for _ in range(iterations):
            offsets = rows.astype(np.float64) - center
            norms = np.linalg.norm(offsets, axis=1)
            center = center + (np.minimum(1.0, radius / norms)[:, None] * offsets).mean(axis=0)
        outputs.append(center)
    return outputs


@pytest.mark.parametrize("clients", [7, 6])
def test_the_median_is_numpys_bit_for_bit(clients, tmp_path):
    rows = hand_made_updates(clients)
    [result] = aggregate_rounds(median_aggregator(), [rows], tmp_path=tmp_path)
    np.testing.assert_array_equal(result, np.median(rows, axis=0))
    assert np.abs(result).max() < 2  # the two attackers moved nothing far


def test_the_trimmed_mean_is_scipys(tmp_path):
    rows = hand_made_updates(10)  # 0.15 x 10 = 1.5: floor cuts 1 a side, rounding would cut 2
    [result] = aggregate_rounds(trimmed_mean_aggregator(0.15), [rows], tmp_path=tmp_path)
    np.testing.assert_allclose(result, scipy.stats.trim_mean(rows.astype(np.float64), 0.15,
                                                             axis=0), rtol=1e-6)


def test_krum_picks_the_client_numpy_picks_and_multi_krum_averages_numpys(tmp_path):
    rows = hand_made_updates(9, seed=3)
    [krum] = aggregate_rounds(krum_aggregator(2, clients_per_round=9), [rows],
                              tmp_path=tmp_path)
    np.testing.assert_array_equal(krum, numpy_krum(rows, 2, 1))  # one client's row, exactly
    [multi] = aggregate_rounds(multi_krum_aggregator(2, 4, clients_per_round=9), [rows],
                               tmp_path=tmp_path)
    np.testing.assert_allclose(multi, numpy_krum(rows, 2, 4), rtol=1e-6)
    chosen = {i for i in range(9) if np.array_equal(rows[i], krum)}
    assert chosen and not chosen & {1, 8}


@pytest.mark.parametrize("byzantine", [0, 2, 4])
def test_krum_scores_are_numpys(byzantine):
    rows = hand_made_updates(9, seed=3)
    rows[4] = np.nan  # a NaN upload scores infinity, never best
    ours = krum_scores(tf.constant(rows), byzantine).numpy()
    rows64, n = rows.astype(np.float64), len(rows)
    distances = ((rows64[:, None, :] - rows64[None, :, :]) ** 2).sum(-1)
    distances[np.isnan(distances)] = np.inf
    expected = [np.sort(np.delete(distances[i], i))[: n - byzantine - 2].sum() for i in range(n)]
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert np.isinf(ours[4]) and np.isfinite(np.delete(ours, 4)).all()


def test_the_geometric_median_is_rfas_weiszfeld(tmp_path):
    rows = hand_made_updates(8, seed=5)
    weights = np.array([10, 20, 30, 10, 5, 40, 10, 15], np.float32)
    for smoothing in (1e-6, 2.0):  # 2.0 binds: it exceeds several clients' distances
        [result] = aggregate_rounds(geometric_median_aggregator(iterations=4,
                                                                smoothing=smoothing),
                                    [rows], weights, tmp_path=tmp_path)
        np.testing.assert_allclose(result, numpy_weiszfeld(rows, weights.astype(np.float64), 4,
                                                           smoothing), rtol=1e-5)


def test_centered_clipping_starts_each_round_from_the_last_aggregate(tmp_path):
    rounds = [hand_made_updates(6, seed=s) for s in (1, 2, 3)]
    results = aggregate_rounds(centered_clipping_aggregator(clip_radius=0.7, iterations=2),
                               rounds, tmp_path=tmp_path)
    for result, expected in zip(results, numpy_centered_clipping(rounds, 0.7, 2), strict=True):
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-7)


def test_quantized_median_is_within_one_level_and_sends_8_bits(tmp_path):
    rows = hand_made_updates(7)
    factory = median_aggregator(quantization_bits=8, seed=4)
    [result] = aggregate_rounds(factory, [rows], tmp_path=tmp_path)
    levels = (rows.max(axis=1) - rows.min(axis=1)).max() / 255
    assert np.abs(result - np.median(rows, axis=0)).max() <= levels
    for bits, expected_upload in ((8, 8 * WIDTH + 64), (None, 32 * WIDTH)):
        process = median_aggregator(quantization_bits=bits).create(
            VALUE_TYPE, tff.TensorType(np.float32))
        measured = measure_round_communication(process.next)
        assert measured.upload_bits_per_client == expected_upload + 32  # plus the weight


@pytest.mark.parametrize("build, message", [
    (lambda: trimmed_mean_aggregator(0.5), "aggregator.trim_fraction must be in [0, 0.5)"),
    (lambda: krum_aggregator(4, clients_per_round=10), "n > 2f + 2"),
    (lambda: multi_krum_aggregator(1, 11, clients_per_round=10), "aggregator.selected"),
    (lambda: median_aggregator(quantization_bits=4), "quantization_bits must be null or 8"),
    (lambda: geometric_median_aggregator(iterations=0), "aggregator.iterations"),
    (lambda: centered_clipping_aggregator(clip_radius=0), "aggregator.clip_radius"),
])
def test_bad_settings_are_one_line(build, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")) as error:
        build()
    assert "\n" not in str(error.value)
