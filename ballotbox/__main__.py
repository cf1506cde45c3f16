import sys

from ballotbox.cli import main

sys.exit(main())
