"""Run the training config as a SageMaker job: ``python launch.py`` (or ``socal-launch``).

The code is ``socal.apps.launch``; see README.
"""

from socal.apps.launch import main

if __name__ == "__main__":
    main()
