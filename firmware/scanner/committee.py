"""The committee's actions on the running scanner service (firmware.scanner.run answers them; the
`ballotbox committee` parser is built from this table, without importing the service itself)."""

# action -> what it does (`committee --help`); each is checked with its role's PIN (firmware.common.roles)
ACTIONS = {
    "self-test": "the devices', clock's and network's check before opening (technician)",
    "zero-report": "print the zero report (operator); the first after the self-test also loads the election",
    "open": "open the polls (president)",
    "pause": "pause voting (president)",
    "resume": "resume voting (president)",
    "close": "close the polls: results signed into the outbox, the results report printed (president)",
    "reprint": "print the results report again (operator)",
    "clear-fault": "the paper-path fault is cleared; say whether a sheet was taken out (operator)",
    "status": "the polls, the ballots counted, faults, the outbox (any role)",
}
