"""``python -m socal.jobs SWEEP_DIR [--download]``: the code is ``socal.sagemaker.jobs``."""

import sys

from socal.sagemaker.jobs import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
