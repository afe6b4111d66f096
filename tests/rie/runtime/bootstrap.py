"""/var/runtime/bootstrap.py of the RIE tests: the Python side of Lambda's runtime start.

It reads the handler from `_HANDLER` only now, after any exec wrapper ran (a wrapper may
point it elsewhere), which `python -m awslambdaric <handler>` would not do, and puts the
function's folder first on sys.path, as Lambda's runtime does. Then it hands the handler to
awslambdaric's own entry point, whose signature is the same in 2.x (python3.8/3.9) and 4.x
(python3.12/3.13), though `bootstrap.run` changed between them.
"""

import os
import sys

from awslambdaric.__main__ import main as awslambdaric_main


def main():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler = os.environ.get("_HANDLER")
    if not handler:
        sys.stderr.write("bootstrap.py: _HANDLER is not set\n")
        sys.exit(1)
    awslambdaric_main([sys.argv[0], handler])


if __name__ == "__main__":
    main()
