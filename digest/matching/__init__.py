"""Matching: which papers each subscriber wants (engine, authors, similarity, ranking), the runs
that store them as candidates, and the "more/less like this" feedback."""
