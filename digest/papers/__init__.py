"""Papers in: fetching feeds, parsing and cleaning them, storing papers once, the public archive."""
