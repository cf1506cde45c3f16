"""The scanner service: ballot state table, store (cast-vote records in random slots), tally, its reports."""
