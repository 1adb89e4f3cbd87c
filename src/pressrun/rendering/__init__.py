"""Rendering: documents in, images and PDFs out, through a supervised pool of warm Chromium pages.

The role callers depend on is :class:`Renderer` (base.py); ``pressrun.rendering.fake.FakeRenderer``
plays it in fast tests."""

from pressrun.rendering.base import Renderer
from pressrun.rendering.policy import TEMPLATE_ORIGIN, NetworkPolicy
from pressrun.rendering.pool import ChromiumRenderer

__all__ = ["TEMPLATE_ORIGIN", "ChromiumRenderer", "NetworkPolicy", "Renderer"]
