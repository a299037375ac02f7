"""Training ("fxnet profile"): data, alignment, losses, the training loop and scale-out.

Modules, one responsibility each:

* :mod:`fxnet.train.losses` - loss functions ``loss(pred, target) -> scalar`` and ``parse_loss``.
* :mod:`fxnet.train.align` - latency measurement by FFT cross-correlation, pair checks.
* :mod:`fxnet.train.data` - dry/wet folder pairs (knobs.csv, SignalTrain names) held in RAM.
* :mod:`fxnet.train.synthdata` - pairs generated on the fly with a reference effect.
* :mod:`fxnet.train.loop` - the optimiser loop, budgets, checkpoints and resume.
* :mod:`fxnet.train.ddp` - torchrun / DistributedDataParallel plumbing.

Nothing is imported here: ``import fxnet.train`` stays cheap.
"""
