"""The speed benchmark (``python -m ranlib benchmark``): training-step throughput, its data paths, GPU peaks.

It sits beside the paper code, as nanoGPT's ``bench.py`` sits beside its model: nothing in ``ranlib``'s core
imports it. ``throughput`` times the training step that ``ranlib.engine.train.fit`` runs; ``gpu_loader`` is
the benchmark's GPU-resident data path (``fit`` reads its batches through ``ranlib.data``'s CPU loader);
``gpu_specs`` holds the peak FLOP rates behind the estimates that ``ranlib.course`` prints.
"""
