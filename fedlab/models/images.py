"""Keras model builders: plain functions ``(input_shape, num_classes) -> tf.keras.Model``.

Every model outputs logits (no softmax layer): the task's loss (``fedlab.tasks``) computes the
cross-entropy from them, the same way in training and evaluation. ``tf.nn.softmax`` of the output
gives class probabilities. These models take images (the image-classification task); models of
other task kinds live with their kind (``fedlab.tasks.next_token``).
"""

import functools
from collections.abc import Sequence

import tensorflow as tf


def fedavg_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The CNN of McMahan et al. 2017 as in the reference study.

    5x5 conv 32, 2x2 max-pool, 5x5 conv 64, 2x2 max-pool, dense 512, dense ``num_classes``
    (logits): 1,663,370 parameters on 28x28x1 inputs with 10 classes.
    """
    conv2d = functools.partial(
        tf.keras.layers.Conv2D, kernel_size=5, padding="same", activation="relu"
    )
    max_pool = functools.partial(tf.keras.layers.MaxPooling2D, pool_size=(2, 2), padding="same")
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
            conv2d(filters=32),
            max_pool(),
            conv2d(filters=64),
            max_pool(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(512, activation="relu"),
            tf.keras.layers.Dense(num_classes),
        ],
        name="fedavg_cnn",
    )


def simple_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The reference study's small custom CNN: 3x3 conv 16, pool, dense 64, dense (logits)."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
            tf.keras.layers.Conv2D(16, (3, 3), activation="relu", padding="same"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(num_classes),
        ],
        name="simple_cnn",
    )


def _torch_default_init(fan_in: int) -> dict:
    """PyTorch's default initialisation of a Conv2d or Linear layer with ``fan_in`` inputs.

    Weights from kaiming_uniform(a=sqrt(5)) and biases alike: both U(-1/sqrt(fan_in),
    1/sqrt(fan_in)).
    """
    bound = fan_in ** -0.5
    return {"kernel_initializer": tf.keras.initializers.VarianceScaling(
                scale=1 / 3, mode="fan_in", distribution="uniform"),
            "bias_initializer": tf.keras.initializers.RandomUniform(-bound, bound)}


def niid_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """NIID-Bench's ``simple-cnn`` (``SimpleCNNMNIST`` on 28x28x1, ``SimpleCNN`` on 32x32x3).

    5x5 valid conv 6, ReLU, 2x2 max-pool, 5x5 valid conv 16, ReLU, 2x2 max-pool, dense 120
    ReLU, dense 84 ReLU, dense ``num_classes`` (logits): 44,426 parameters on 28x28x1 with 10
    classes. Initialised as PyTorch initialises those layers (NIID-Bench's framework), not with
    Keras' Glorot default; the flattening order (height, width, channels) differs from
    PyTorch's (channels first), which permutes the first dense layer's inputs only.
    """
    height, width, channels = input_shape

    def side(pixels: int) -> int:  # after conv 5x5, pool 2, conv 5x5, pool 2
        return max(((pixels - 4) // 2 - 4) // 2, 1)  # (too small: Keras says so when built)

    flat = 16 * side(height) * side(width)
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
            tf.keras.layers.Conv2D(6, 5, activation="relu", **_torch_default_init(25 * channels)),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Conv2D(16, 5, activation="relu", **_torch_default_init(25 * 6)),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(120, activation="relu", **_torch_default_init(flat)),
            tf.keras.layers.Dense(84, activation="relu", **_torch_default_init(120)),
            tf.keras.layers.Dense(num_classes, **_torch_default_init(84)),
        ],
        name="niid_cnn",
    )


def tutorial_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The TensorFlow CNN tutorial's model (122,570 parameters on 32x32x3, 10 classes).

    Three 3x3 valid convolutions 32/64/64 with 2x2 pooling after the first two, dense 64,
    dense ``num_classes`` (logits, as in the tutorial).
    """
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
            tf.keras.layers.Conv2D(32, (3, 3), activation="relu"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.Conv2D(64, (3, 3), activation="relu"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.Conv2D(64, (3, 3), activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(num_classes),
        ],
        name="tutorial_cnn",
    )


def mlp(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The FedAvg paper's 2NN: two hidden ReLU layers of 200 units."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(200, activation="relu"),
            tf.keras.layers.Dense(200, activation="relu"),
            tf.keras.layers.Dense(num_classes),
        ],
        name="mlp",
    )


def resnet18(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """TFF's ResNet-18 with group normalisation (its CIFAR-100 baseline, Reddi et al. 2020).

    Built by ``tff.simulation.models.resnet_models.create_resnet18``, whose last layer applies a
    softmax; here that layer outputs logits instead (same weights, same layers otherwise).
    """
    import tensorflow_federated as tff

    built = tff.simulation.models.resnet_models.create_resnet18(
        input_shape=tuple(input_shape), num_classes=num_classes)
    last = built.layers[-1]

    def logits_instead_of_softmax(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        config = layer.get_config()
        if layer is last:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    return tf.keras.models.clone_model(built, clone_function=logits_instead_of_softmax)
