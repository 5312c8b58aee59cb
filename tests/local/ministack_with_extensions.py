"""Runs ministack (the `ministack` console script's entry point, with its environment variables:
GATEWAY_PORT, BIND_HOST, PERSIST_STATE, STATE_DIR, ...) with ministack_cfn_extensions loaded
first: the CloudFormation resource types ministack 1.5.33 lacks (see that module).

    .venv/bin/python tests/local/ministack_with_extensions.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ministack_cfn_extensions  # noqa: E402,F401  (registers the provisioners on import)
from ministack.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
