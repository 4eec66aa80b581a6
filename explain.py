"""Explain a model's predictions: ``python explain.py run=PATH data.root=FOLDER`` (or
``socal-explain``).

The code is ``socal.apps.explain``; see README.
"""

from socal.apps.explain import main

if __name__ == "__main__":
    main()
