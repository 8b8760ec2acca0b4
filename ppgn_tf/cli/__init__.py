"""The programs (absl flags and main), one module each: train, export, sample, evaluate, report, bench, sweep; flag_reference writes docs/flags.md from their flags."""
