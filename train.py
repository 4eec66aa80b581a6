"""Train and evaluate one run: ``python train.py data.root=./SOCAL`` (or ``socal-train``).

The code is ``socal.apps.train``; see README.
"""

from socal.apps.train import main

if __name__ == "__main__":
    main()
