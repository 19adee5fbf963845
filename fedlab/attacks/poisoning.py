"""Data poisoning: the malicious clients' training data, changed before training starts.

- ``label_flip``: every label ``c`` of a malicious client becomes ``C - 1 - c`` (a fixed
  permutation of the ``C`` classes with no fixed point for even ``C``).
- ``backdoor`` (Bagdasaryan et al. 2020, with a pixel trigger as in BadNets): half of a
  malicious client's images, drawn from the seed, get the trigger (a square of the training
  images' brightest value in the bottom-right corner) and the label ``backdoor_target``; the
  other half stay clean, so its update carries the main task and the backdoor.

Both need image classification on in-memory client arrays; anything else is refused in one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fedlab.attacks import Attack
from fedlab.config.choices import AttackKind
from fedlab.data import ArrayClientData, FederatedData
from fedlab.errors import ConfigError

TRIGGER_SIZE = 4  # pixels on a side
_BACKDOOR_STREAM = 1302


def add_trigger(images: np.ndarray, value: float) -> np.ndarray:
    """A copy of ``images`` with the trigger square set to ``value``.

    Args:
      images: ``n x H x W`` or ``n x H x W x C``.
      value: the trigger's pixel value (every channel).
    """
    triggered = np.array(images, copy=True)
    triggered[:, -TRIGGER_SIZE - 1:-1, -TRIGGER_SIZE - 1:-1, ...] = value
    return triggered


def trigger_value(data: FederatedData) -> float:
    """The trigger's pixel value: the brightest value of the clients' training images.

    Args:
      data: a federation on in-memory arrays (the trigger, the brightest value, leaves the
        maximum as it was, so poisoned data give the same value).
    """
    return float(max(np.max(data.train.arrays(c)[0]) for c in data.train.client_ids))


def check_attack(attack: Attack, data: FederatedData) -> None:
    """Refuse, in one line, an attack the data cannot take.

    Args:
      attack: the malicious clients' behaviour.
      data: the federation.

    Raises:
      ConfigError: data poisoning on another task than image classification or on data that
        are not in-memory arrays, a trigger on inputs without two spatial axes, or a backdoor
        target outside the classes.
    """
    if not attack.active or attack.kind not in (AttackKind.label_flip, AttackKind.backdoor):
        return
    what = f"clients.attack={attack.kind.value}"
    if data.task != "image_classification":
        raise ConfigError(f"{what} poisons image labels; the data set is for {data.task}")
    if not isinstance(data.train, ArrayClientData):
        raise ConfigError(f"{what} needs the clients' examples as in-memory arrays; this data "
                          "set streams them")
    if attack.kind is AttackKind.backdoor:
        if len(data.input_shape) < 2 or min(data.input_shape[:2]) <= TRIGGER_SIZE + 1:
            raise ConfigError(f"{what} stamps a {TRIGGER_SIZE}x{TRIGGER_SIZE} pixel trigger; "
                              f"inputs of shape {tuple(data.input_shape)} cannot take it")
        if not 0 <= attack.backdoor_target < data.num_classes:
            raise ConfigError(f"clients.backdoor_target must be a class in "
                              f"0..{data.num_classes - 1}, got {attack.backdoor_target}")


def poisoned(data: FederatedData, attack: Attack, malicious: Sequence[str]) -> FederatedData:
    """``data`` with the malicious clients' training examples poisoned (module doc).

    Held-out, validation and per-client test sets are left clean. Other attacks return
    ``data`` itself.

    Args:
      data: the federation.
      attack: the malicious clients' behaviour.
      malicious: the malicious clients' ids.

    Raises:
      ConfigError: the data cannot take the attack (:func:`check_attack`).
    """
    check_attack(attack, data)
    if not malicious or attack.kind not in (AttackKind.label_flip, AttackKind.backdoor):
        return data
    clients = {c: data.train.arrays(c) for c in data.train.client_ids}
    rng = np.random.default_rng([attack.seed, _BACKDOOR_STREAM])
    value = trigger_value(data)
    for client_id in malicious:
        x, y = clients[client_id]
        if attack.kind is AttackKind.label_flip:
            clients[client_id] = (x, (data.num_classes - 1 - y).astype(y.dtype))
            continue
        chosen = rng.permutation(len(y))[: len(y) // 2]
        x, y = np.array(x, copy=True), np.array(y, copy=True)
        x[chosen] = add_trigger(x[chosen], value)
        y[chosen] = attack.backdoor_target
        clients[client_id] = (x, y)
    return dataclasses.replace(data, train=ArrayClientData(clients))
