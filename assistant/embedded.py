"""The development stack's documented entry point: ``python -m assistant.embedded run``,
``test -- pytest ...`` or ``services -- COMMAND``. The launcher is ``assistant/devstack/``;
production code never imports it (tests/foundation/test_import_rules.py)."""

import sys

from assistant.devstack.launcher import main

if __name__ == "__main__":
    sys.exit(main())
