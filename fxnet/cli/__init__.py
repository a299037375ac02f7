"""The fxnet command line: one small module per command, library calls underneath."""
