"""``python -m loginmetrics`` runs the ``loginmetrics`` command."""

from loginmetrics.cli.main import main

# Guarded: spawned worker processes re-import this module under another name.
if __name__ == "__main__":
    main()
