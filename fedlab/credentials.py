"""``python -m fedlab.credentials``: TLS material for remote workers.

See :mod:`fedlab.executors.credentials`.
"""

if __name__ == "__main__":
    from fedlab.executors.credentials import main

    main()
