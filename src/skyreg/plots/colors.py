"""One colour per band, shared by the matplotlib figures and the sky viewer.

Ordered like the filters' wavelengths (violet for u to brown for y), so a picture reads the
same whichever tool drew it. Bands not listed get a grey.
"""

from __future__ import annotations

BAND_COLORS: dict[str, str] = {
    "u": "#7b3294", "g": "#1f78b4", "r": "#2ca02c", "i": "#ff7f00", "z": "#d62728",
    "y": "#8c564b", "Y": "#8c564b", "N921": "#e377c2",
}

OTHER_BAND = "#7f7f7f"


def band_color(band: str | None) -> str:
    """The colour of a band (``#rrggbb``)."""
    return BAND_COLORS.get(band or "", OTHER_BAND)
