"""Rendering: documents in, images and PDFs out, through a supervised pool of warm Chromium pages."""

from pressrun.rendering.policy import TEMPLATE_ORIGIN, NetworkPolicy
from pressrun.rendering.pool import ChromiumRenderer

__all__ = ["TEMPLATE_ORIGIN", "ChromiumRenderer", "NetworkPolicy"]
