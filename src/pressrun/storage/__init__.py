"""Where output files and template assets live: local storage, signed download links, and the
service's absolute links (links.py)."""

from pressrun.storage.links import Links
from pressrun.storage.local import LocalStorage
from pressrun.storage.signing import UrlSigner, load_or_create_secret

__all__ = ["Links", "LocalStorage", "UrlSigner", "load_or_create_secret"]
