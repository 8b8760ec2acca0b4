"""The programs (absl flags and main), one module each: train, export, sample, evaluate, report, bench, sweep."""
