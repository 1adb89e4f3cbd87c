"""pressrun: one template × N rows = N images or PDFs, from the command line (``pressrun render``)
or an HTTP API with durable batch jobs and signed webhooks (``pressrun serve``).

The public Python API is exactly what ``__all__`` lists. The map of the code is docs/architecture.md.
"""

from pressrun.errors import PressrunError, RowError, error_body
from pressrun.models import OutputFormat, PdfOptions, RenderOptions, RenderResult

__version__ = "0.1.0"

__all__ = [
    "OutputFormat",
    "PdfOptions",
    "PressrunError",
    "RenderOptions",
    "RenderResult",
    "RowError",
    "__version__",
    "error_body",
]
