"""The fast card-value parser agrees with astropy on every card it accepts."""

from __future__ import annotations

from pathlib import Path

import astropy
from astropy.io import fits
from hypothesis import given
from hypothesis import strategies as st

from skyreg.fits.headers import _NOT_SIMPLE, _simple_value

DATA = Path(astropy.__file__).parent / "wcs" / "tests" / "data"


def _cards() -> list[str]:
    images: list[str] = []
    for path in sorted(DATA.glob("*.hdr")) + sorted(DATA.glob("*.fits")):
        try:
            if path.suffix == ".hdr":
                headers = [fits.Header.fromstring(path.read_text(errors="replace"))]
            else:
                with fits.open(path) as hdus:
                    headers = [hdu.header for hdu in hdus]
        except Exception:  # some files there are deliberately broken
            continue
        for header in headers:
            images.extend(card.image for card in header.cards)
    return images


CARDS = _cards()


def test_real_headers_have_cards() -> None:
    assert len(CARDS) > 1000


def test_every_real_card_parses_like_astropy() -> None:
    fast = 0
    for image in CARDS:
        value = _simple_value(image)
        if value is _NOT_SIMPLE:
            continue
        fast += 1
        expected = fits.Card.fromstring(image).value
        assert value == expected and type(value) is type(expected), image
    assert fast > len(CARDS) // 2  # most cards take the fast path


values = st.one_of(
    st.booleans(), st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@given(values, st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                       max_size=20))
def test_generated_cards_parse_like_astropy(value: object, comment: str) -> None:
    image = fits.Card("KEYWORD", value, comment).image
    fast = _simple_value(image)
    if fast is _NOT_SIMPLE:
        return
    expected = fits.Card.fromstring(image).value
    assert fast == expected and type(fast) is type(expected), image
