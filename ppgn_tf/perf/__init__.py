"""Performance: the benchmark, its useful-FLOP counts, and the thesis' step restated in PyTorch as its peer."""
