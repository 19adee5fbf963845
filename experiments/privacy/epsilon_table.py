"""Print the client-level epsilon fedlab reports, for a few noise multipliers and round counts.

    uv run python experiments/privacy/epsilon_table.py [--clients 50] [--per-round 10]

Uses fedlab.privacy.accounting (RDP, replace-one, sampling without replacement), delta 1e-5.
"""

import argparse

from fedlab.privacy import accounting

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--clients", type=int, default=50)
parser.add_argument("--per-round", type=int, default=10)
parser.add_argument("--delta", type=float, default=1e-5)
args = parser.parse_args()
rounds = (10, 40, 100, 1000)
print(f"epsilon at delta {args.delta}, {args.per_round} of {args.clients} clients per round")
print("| noise multiplier | " + " | ".join(f"{r} rounds" for r in rounds) + " |")
print("|---|" + "---|" * len(rounds))
for noise in (0.5, 1.0, 2.0, 5.0):
    epsilons = [accounting.epsilon(r, noise, args.clients, args.per_round, args.delta)
                for r in rounds]
    print(f"| {noise} | " + " | ".join(f"{e:.2f}" for e in epsilons) + " |")
