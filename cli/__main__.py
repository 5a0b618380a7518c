"""``python -m cli`` runs the ``loginmetrics`` command."""

from cli.main import main

# Guarded: spawned worker processes re-import this module under another name.
if __name__ == "__main__":
    main()
