"""``python -m fedlab.worker``: a TFF worker service (see :mod:`fedlab.executors.worker`)."""

if __name__ == "__main__":
    from fedlab.executors.worker import main

    main()
