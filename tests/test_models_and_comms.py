"""Model sizes, and exact bits per round checked against an independent hand count."""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from fedlab import tasks
from fedlab.aggregators import compression
from fedlab.algorithms.fedavg import FedAvg
from fedlab.clients import communication
from fedlab.executors import contexts
from fedlab.models import images
from fedlab.trainers import federated

INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec([None, 28, 28, 1], tf.float32), y=tf.TensorSpec([None], tf.int32)
)


def fedavg_process(builder, aggregator, client_lr=0.02, **build_args):
    """FedAvg on 28x28x1 inputs with 10 classes, client SGD and server SGD lr 1.0."""
    model_fn = tasks.Task(builder, (28, 28, 1), 10).tff_model_fn(INPUT_SPEC)
    return FedAvg().build(model_fn, aggregator,
                                     tff.learning.optimizers.build_sgdm(client_lr),
                                     tff.learning.optimizers.build_sgdm(1.0), **build_args)
AGGREGATORS = {
    "mean": lambda: tff.aggregators.MeanFactory(),
    "compression_only": lambda: tff.learning.compression_aggregator(zeroing=False, clipping=False),
    "seeded_compression_only": lambda: compression.compression_aggregator(
        zeroing=False, clipping=False, seed=3),
}
# Shapes written out by hand from the architectures (28x28x1 input, 10 classes).
FEDAVG_CNN_SHAPES = [(5, 5, 1, 32), (32,), (5, 5, 32, 64), (64,), (3136, 512), (512,),
                     (512, 10), (10,)]
SIMPLE_CNN_SHAPES = [(3, 3, 1, 16), (16,), (3136, 64), (64,), (64, 10), (10,)]
# Per client and round, besides the model: the client learning rate broadcast with it
# (one float32) and, uploaded, the update weight (float32) and the summed training metrics:
# accuracy and loss as (total, count) float32 pairs, num_examples and num_batches as int64.
CLIENT_LR_BITS = 32
UPLOAD_EXTRA_BITS = 32 + 4 * 32 + 2 * 64


def hand_count_upload(shapes, compressed: bool) -> int:
    bits = 0
    for shape in shapes:
        size = math.prod(shape)
        if compressed and size > 20_000:  # TFF quantizes tensors above 20,000 elements
            # 8-bit codes packed 28 bits to an int32 word (tfmot BitpackingEncodingStage),
            # plus the float32 min and max of the tensor.
            bits += math.ceil(size * 8 / 28) * 32 + 2 * 32
        else:
            bits += size * 32
    return bits + UPLOAD_EXTRA_BITS


def test_fedavg_cnn_has_the_papers_parameter_count():
    assert images.fedavg_cnn((28, 28, 1), 10).count_params() == 1_663_370


def test_simple_cnn_parameter_count():
    model = images.simple_cnn((28, 28, 1), 10)
    assert [tuple(w.shape) for w in model.trainable_weights] == SIMPLE_CNN_SHAPES
    assert model.count_params() == 201_578


@pytest.mark.parametrize("builder,shapes", [(images.fedavg_cnn, FEDAVG_CNN_SHAPES),
                                            (images.simple_cnn, SIMPLE_CNN_SHAPES)])
@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
def test_round_bits_match_hand_count(builder, shapes, aggregator):
    process = fedavg_process(builder, AGGREGATORS[aggregator]())
    measured = communication.measure_round_communication(process.next)
    model_bits = sum(math.prod(s) for s in shapes) * 32
    assert measured.broadcast_bits_per_client == model_bits + CLIENT_LR_BITS
    assert measured.upload_bits_per_client == hand_count_upload(
        shapes, compressed="compression" in aggregator
    )


def test_compression_cuts_fedavg_cnn_upload_about_fourfold():
    def upload(factory):
        process = fedavg_process(images.fedavg_cnn, factory)
        return communication.measure_round_communication(process.next).upload_bits_per_client

    ratio = upload(tff.aggregators.MeanFactory()) / upload(tff.learning.compression_aggregator())
    assert 3.4 < ratio < 3.6  # 32 bits -> 8/28 of a word per value: 3.5x on the big tensors


def test_type_bits_counts_dtype_width():
    assert communication.type_bits(tff.TensorType(np.int64, [3, 2])) == 6 * 64
    assert communication.type_bits(tff.StructType([tff.TensorType(np.float32, [4]),
                                           tff.TensorType(np.int32)])) == 4 * 32 + 32


def test_totals_scale_with_clients():
    totals = communication.RoundCommunication(100, 40).totals(clients_per_round=3)
    assert totals == {"bits_down_per_client": 100, "bits_up_per_client": 40,
                      "bits_down": 300, "bits_up": 120}


def test_client_loops_train_identically(tmp_path):
    """fedlab's DATASET_ITERATOR loop computes exactly what TFF's default DATASET_REDUCE does."""
    rng = np.random.default_rng(0)
    client_arrays = [(rng.random((12, 28, 28, 1), dtype=np.float32),
                      rng.integers(0, 10, 12).astype(np.int32)) for _ in range(3)]
    datasets = [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y)).batch(5)
                for x, y in client_arrays]
    weights = federated.keras_model_weights(
        tasks.Task(images.simple_cnn, (28, 28, 1), 10).keras_model(seed=0))
    results = []
    with contexts.local_execution(tmp_path / "worker.log"):
        for loop in (tff.learning.LoopImplementation.DATASET_REDUCE,
                     tff.learning.LoopImplementation.DATASET_ITERATOR):
            process = fedavg_process(images.simple_cnn, tff.aggregators.MeanFactory(),
                                     client_lr=0.1, loop=loop)
            state = process.set_model_weights(process.initialize(), weights)
            for _ in range(2):
                output = process.next(state, datasets)
                state = output.state
            results.append((output.metrics["client_work"]["train"],
                            process.get_model_weights(state).trainable))
    (reduce_metrics, reduce_weights), (iterator_metrics, iterator_weights) = results
    assert dict(reduce_metrics) == dict(iterator_metrics)
    for reduced, iterated in zip(reduce_weights, iterator_weights, strict=False):
        np.testing.assert_array_equal(reduced, iterated)


def test_train_and_eval_loss_are_one_computation_even_for_a_diverged_model(tmp_path):
    """A confidently wrong model: TFF's training loss equals the held-out loss on the same data."""
    rng = np.random.default_rng(1)
    x = rng.random((40, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 40).astype(np.int32)
    model = tasks.Task(images.simple_cnn, (28, 28, 1), 10).keras_model(seed=0)
    model.set_weights([w * 60.0 for w in model.get_weights()])  # logits in the thousands
    logits = model.predict(x, verbose=0).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exact = float(np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(40), y]))
    assert exact > 100  # far beyond what clipped probabilities allow (-log 1e-7 = 16.1)
    weights = federated.keras_model_weights(model)
    evaluator = tasks.Task(images.simple_cnn, (28, 28, 1), 10).compiled_keras_model()
    weights.assign_weights_to(evaluator)
    eval_loss = evaluator.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    dataset = tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y)).batch(40)
    with contexts.local_execution(tmp_path / "worker.log"):
        process = fedavg_process(images.simple_cnn, tff.aggregators.MeanFactory(), client_lr=0.0)
        state = process.set_model_weights(process.initialize(), weights)
        train_loss = float(process.next(state, [dataset]).metrics["client_work"]["train"]["loss"])
    assert train_loss == pytest.approx(exact, rel=1e-4)
    assert eval_loss == pytest.approx(exact, rel=1e-4)
