"""Benchmarks of the event pipeline (run by `manage.py outbox_bench`, never by the test suite's clock)."""
