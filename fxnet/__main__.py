"""`python -m fxnet` (also what `torchrun -m fxnet` runs)."""

from fxnet.cli.app import main

if __name__ == "__main__":
    main()
