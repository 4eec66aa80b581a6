"""On the instance: the SageMaker SDK's own driver command, started with ``exec``.

SDK v3's ``sm_train.sh`` (what the container's process 1 runs) traps only ERR, and its drivers
start ``train.py`` (or ``torchrun``) with ``Popen`` and forward no signal: the SIGTERM of a stop,
a spot interruption or ``max_run`` goes to process 1, which has no handler, and is dropped.
A job's source code therefore runs the command ``exec $SM_PYTHON_CMD -m
socal.sagemaker.exec_driver``: ``sm_train.sh`` replaces itself by this module, which builds the
driver's command with the driver's own functions (same arguments, same NCCL/EFA environment)
and replaces itself by it. ``train.py`` (single process) or ``torchrun`` (which passes SIGTERM
on to its workers) then is process 1 and receives the signal.

Standard library only: it runs before anything else on the instance.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# What the job's SourceCode.command runs (sm_train.sh evaluates it, expanding $SM_PYTHON_CMD).
COMMAND = "exec $SM_PYTHON_CMD -m socal.sagemaker.exec_driver"


def driver_command() -> list[str]:
    """The command the SDK's torchrun or basic-script driver would ``Popen``."""
    drivers = Path(os.environ.get("SM_INPUT_DATA_DIR", "/opt/ml/input/data"))
    sys.path.insert(0, str(drivers / "sm_drivers" / "distributed_drivers"))
    if os.environ.get("SM_DISTRIBUTED_CONFIG"):
        driver = importlib.import_module("torchrun_driver")
        driver.setup_env()
    else:
        driver = importlib.import_module("basic_script_driver")
    return driver.create_commands()


def main() -> None:
    command = driver_command()
    print(f"exec_driver: exec {' '.join(command[:2])} ...", flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
