"""/var/runtime/bootstrap.py of the RIE tests: the Python side of Lambda's runtime start.

It reads the handler from `_HANDLER` only now, after any exec wrapper ran (a wrapper may
point it elsewhere), which `python -m awslambdaric <handler>` would not do, and puts the
function's folder first on sys.path, as Lambda's runtime does.
"""

import os
import sys

from awslambdaric import bootstrap


def main():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler = os.environ.get("_HANDLER")
    if not handler:
        sys.stderr.write("bootstrap.py: _HANDLER is not set\n")
        sys.exit(1)
    bootstrap.run(task_root, handler, os.environ["AWS_LAMBDA_RUNTIME_API"])


if __name__ == "__main__":
    main()
