"""Communication cost of one round, read from the built TFF computation itself.

Every value that crosses the network in a TFF round is the operand of a federated intrinsic:
the server broadcasts with ``federated_broadcast``; clients upload through the aggregation
intrinsics (``federated_aggregate``, ``federated_sum``, ``federated_mean``, ...). Summing the
sizes of those operands' tensor types gives exactly what the process transmits, whatever
aggregator built it: a quantizing aggregator shows up as the packed ``int32`` words it really
sends, not as the float32 model it started from.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow_federated as tff

BROADCAST_INTRINSICS = frozenset({"federated_broadcast"})
UPLOAD_INTRINSICS = frozenset(
    {
        "federated_aggregate",
        "federated_sum",
        "federated_mean",
        "federated_weighted_mean",
        "federated_secure_sum",
        "federated_secure_sum_bitwidth",
        "federated_secure_modular_sum",
    }
)


@dataclass(frozen=True)
class RoundCommunication:
    """Bits a single client receives and sends in one round."""

    broadcast_bits_per_client: int
    upload_bits_per_client: int

    def totals(self, clients_per_round: int, clients_reported: int | None = None
               ) -> dict[str, int]:
        """Per-client and all-client figures of a round.

        ``clients_per_round`` clients download the model; ``clients_reported`` of them (default:
        all) upload.
        """
        reported = clients_per_round if clients_reported is None else clients_reported
        return {
            "bits_down_per_client": self.broadcast_bits_per_client,
            "bits_up_per_client": self.upload_bits_per_client,
            "bits_down": self.broadcast_bits_per_client * clients_per_round,
            "bits_up": self.upload_bits_per_client * reported,
        }


def type_bits(type_spec: tff.Type) -> int:
    """Bits in a value of ``type_spec``: elements times dtype width, summed over a structure.

    Raises:
      ValueError: a tensor has a dimension unknown until run time.
    """
    if isinstance(type_spec, tff.FederatedType):
        return type_bits(type_spec.member)
    if isinstance(type_spec, tff.StructType):
        return sum(type_bits(element) for element in type_spec)
    if isinstance(type_spec, tff.TensorType):
        if any(dim is None for dim in type_spec.shape):
            raise ValueError(f"cannot size a tensor of unknown shape {type_spec}")
        bits_per_element = np.dtype(type_spec.dtype).itemsize * 8
        return int(np.prod(type_spec.shape, dtype=np.int64)) * bits_per_element
    return 0  # functions, sequences and placements carry no per-round payload here


def _placed_operand_bits(argument_type: tff.Type, placement) -> int:
    """Bits of the operands of an intrinsic call that live at ``placement``."""
    operands = (
        list(argument_type)
        if isinstance(argument_type, tff.StructType)
        else [argument_type]
    )
    return sum(
        type_bits(operand)
        for operand in operands
        if isinstance(operand, tff.FederatedType) and operand.placement is placement
    )


def measure_round_communication(computation: tff.Computation) -> RoundCommunication:
    """Walk ``computation``'s building blocks and size every broadcast and upload in it."""
    broadcast_bits = 0
    upload_bits = 0
    pending = [computation.to_building_block()]
    while pending:
        block = pending.pop()
        pending.extend(block.children())
        if not (
            isinstance(block, tff.framework.Call)
            and isinstance(block.function, tff.framework.Intrinsic)
            and block.argument is not None
        ):
            continue
        uri = block.function.uri
        if uri in BROADCAST_INTRINSICS:
            broadcast_bits += _placed_operand_bits(block.argument.type_signature, tff.SERVER)
        elif uri in UPLOAD_INTRINSICS:
            upload_bits += _placed_operand_bits(block.argument.type_signature, tff.CLIENTS)
    return RoundCommunication(broadcast_bits, upload_bits)
