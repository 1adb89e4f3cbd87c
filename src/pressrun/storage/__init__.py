"""Where output files and template assets live: local storage and signed download links."""

from pressrun.storage.local import LocalStorage
from pressrun.storage.signing import UrlSigner, load_or_create_secret

__all__ = ["LocalStorage", "UrlSigner", "load_or_create_secret"]
