"""Non-neural restoration: clipping detection and the A-SPADE declipper.

:mod:`fxnet.restore.detect` finds clipped samples and their levels;
:mod:`fxnet.restore.aspade` declips with the analysis sparse audio declipper (Kitić,
Bertin, Gribonval 2015), the baseline of ``fxnet remove --method aspade``::

    from fxnet.restore.aspade import aspade
    from fxnet.restore.detect import detect_clipping

The declipper is not re-exported here: ``fxnet.restore.aspade`` stays the module (and
importing detection alone does not import torch).
"""

from fxnet.restore.detect import ClipReport, clip_masks, detect_clipping

__all__ = ["ClipReport", "clip_masks", "detect_clipping"]
