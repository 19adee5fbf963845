"""The seeded quantization stage: reproducible, seed-dependent, unbiased."""

import numpy as np
import pytest
import tensorflow as tf

from fedlab.aggregators.compression import SeededUniformQuantizationStage, compression_aggregator
from fedlab.errors import ConfigError


def quantize(values, seed):
    stage = SeededUniformQuantizationStage(bits=2, seed=seed)
    params, _ = stage.get_params()
    encoded = stage.encode(tf.constant(values), params)
    return stage.decode(encoded, params).numpy()


def test_same_seed_and_input_give_the_same_rounding():
    values = np.linspace(-1.0, 1.0, 1000, dtype=np.float32)
    np.testing.assert_array_equal(quantize(values, 1), quantize(values, 1))


def test_other_seed_gives_other_rounding():
    values = np.linspace(-1.0, 1.0, 1000, dtype=np.float32)
    assert not np.array_equal(quantize(values, 1), quantize(values, 2))


def test_rounding_is_unbiased_and_on_the_grid():
    values = np.full(20000, 0.3, dtype=np.float32)
    values[0], values[1] = 0.0, 1.0  # min and max fix the 2-bit grid at 0, 1/3, 2/3, 1
    decoded = quantize(values, 5)[2:]
    assert {round(float(v), 5) for v in decoded} <= {0.0, 0.33333}
    assert decoded.mean() == pytest.approx(0.3, abs=0.01)


def test_bad_bits_are_a_config_error():
    with pytest.raises(ConfigError, match="quantization_bits"):
        compression_aggregator(quantization_bits=0)
