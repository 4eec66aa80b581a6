"""``python -m socal.check``: kept as an entry point; the code is ``socal.data.check``."""

import sys

from socal.data.check import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
