"""Predict new trials: ``python predict.py run=PATH data.root=FOLDER`` (or ``socal-predict``).

The code is ``socal.apps.predict``; see README.
"""

from socal.apps.predict import main

if __name__ == "__main__":
    main()
