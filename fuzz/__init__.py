"""The fuzzing campaign: saga definitions and events from outside, through every way in.

``python -m fuzz`` (``make fuzz``) runs the full campaign and prints its figures; the test
suite runs a bounded slice of it (``tests/fuzz``). See ``fuzz/README.md``.
"""
