"""fxnet: learned, knob-conditioned audio effects and distortion removal.

Nothing heavy is imported here: `import fxnet` must stay cheap so that the CLI starts
fast. Import the submodules you need (`fxnet.engine`, `fxnet.checkpoint`, ...).
"""

__version__ = "0.1.0"
