"""``python -m socal.prepare``: kept as an entry point; the code is ``socal.data.prepare``."""

import sys

from socal.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
