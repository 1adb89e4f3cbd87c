"""Where output files and template assets live: the storage role (base.py), its backends (local
files; a dict for tests), signed download links, and the service's absolute links (links.py)."""

from pressrun.storage.base import Storage
from pressrun.storage.links import Links
from pressrun.storage.local import LocalStorage
from pressrun.storage.memory import MemoryStorage
from pressrun.storage.signing import UrlSigner, load_or_create_secret

__all__ = ["Links", "LocalStorage", "MemoryStorage", "Storage", "UrlSigner", "load_or_create_secret"]
