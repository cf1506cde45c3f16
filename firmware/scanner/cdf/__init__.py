"""NIST Common Data Format exports of the box: results (SP 1500-100 ElectionReport) and cast-vote
records (SP 1500-103 CastVoteRecordReport), validated against NIST's schemas, signed, written."""
