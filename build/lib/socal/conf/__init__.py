"""socal's Hydra config groups (package data; the Hydra apps load them as ``pkg://socal.conf``)."""
