"""The checkout the tests run in: the tests read its deploy/, services/ and Dockerfiles, which an
installed reelvec does not carry."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
