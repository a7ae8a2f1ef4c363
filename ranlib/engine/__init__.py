"""The training engine: configuration, ``fit``, checkpoints, data order, distributed processes, logs, run plots.

``ranlib.engine.train.fit(TrainConfig(...))`` is the front door (also ``from ranlib import fit, TrainConfig``).
This package's ``__init__`` imports nothing, so that ``ranlib.evaluate`` can import the checkpoint loader
without loading the training loop.
"""
