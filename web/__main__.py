"""`python -m web`: serve the app with settings from QA_* environment variables."""

import sys

from index.errors import UserError
from qa.settings import Settings

from .app import serve

try:
    serve(Settings.from_env())
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
