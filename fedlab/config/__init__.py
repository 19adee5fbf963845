"""The configuration's schemas (derived from builders' signatures), closed choices, schedule."""
