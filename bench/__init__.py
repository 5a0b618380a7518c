"""Benchmarks of the worker pipeline on the real local stack: they print figures and write JSON
under bench/results/, and assert nothing about time."""
