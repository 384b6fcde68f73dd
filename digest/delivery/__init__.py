"""Delivery: dispatching due digests, building and sending them exactly once, bounces and the
refused-message alarm."""
