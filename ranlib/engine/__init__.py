"""The training engine: ``fit`` and the modules it is made of, one concern each.

``train`` (``fit``: set-up, loop, finish), ``step`` (one optimisation step, which the benchmark runs too),
``config`` (``TrainConfig``), ``preflight`` and ``run_dir`` (what is refused before anything is written; the run
directory's layout and its ``config.json``), ``data_order`` (data order and augmentation a resumed run reproduces),
``resumable`` and ``checkpoint`` (what a resumable checkpoint holds; atomic, verified files), ``signals`` (Ctrl-C and
SIGTERM at a step boundary), ``distributed`` (torchrun), ``run_log`` and ``run_plots`` (log.csv, TensorBoard,
figures), ``evaluation`` (``python -m ranlib evaluate``) and ``wording`` (the commands the messages name).

``ranlib.engine.train.fit(TrainConfig(...))`` is the front door (also ``from ranlib import fit, TrainConfig``).
This package's ``__init__`` imports nothing, so that ``ranlib.evaluate`` can import the checkpoint loader
without loading the training loop.
"""
