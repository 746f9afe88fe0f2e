"""Cloud price catalogs and rate cards, normalised to a price per GPU-hour.

Each parser reads a provider's own format and yields ``PriceOffer`` records for GPU compute
only; an offer whose GPU model is unknown is reported (``SkippedOffer``), never guessed.
"""
