"""The disclosure excerpt (``bt-analyzer extract``): the frames of the original captures that
carry one torrent's evidence, as pcapng with a frames.csv mapping them back, recorded in the
analysis folder's manifest.  Reads an output folder and its inputs; nothing else depends on it."""
from analyzer.extract.excerpt import ExtractResult, extract
from analyzer.extract.folder import ExtractError, ExtractUsageError

__all__ = ["ExtractError", "ExtractResult", "ExtractUsageError", "extract"]
