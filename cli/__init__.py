"""The ``loginmetrics`` command line: the composition root that wires settings into clients."""
