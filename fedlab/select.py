"""``python -m fedlab.select``: tuned baselines from a sweep (see :mod:`fedlab.report.select`)."""

if __name__ == "__main__":
    import sys

    from fedlab.report.select import main

    sys.exit(main())
