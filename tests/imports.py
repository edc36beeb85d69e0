"""What a fresh interpreter has imported after some code: for the checks that keep packages out of a module (gevent
out of the asyncio side, the service and asyncio out of the wire contract)."""

import subprocess
import sys


def packages_imported(code: str) -> set[str]:
    """The top-level packages in `sys.modules` once `code` has run in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    return set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split())
