"""``python -m socal.upload``: kept as an entry point; the code is ``socal.sagemaker.upload``."""

import sys

from socal.sagemaker.upload import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
