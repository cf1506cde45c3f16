"""The one command line, `ballotbox`: the entry above firmware/ and simulator/ (firmware never imports the simulator)."""
