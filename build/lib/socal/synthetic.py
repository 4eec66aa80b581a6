"""``python -m socal.synthetic``: kept as an entry point; the code is ``socal.data.synthetic``."""

import sys

from socal.data.synthetic import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
