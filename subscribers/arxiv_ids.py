"""arXiv identifiers in every form people and feeds write them: new style (2410.05254), old style
(hep-th/9901001), with a version, as an abs/pdf/html URL, an `arXiv:` or OAI prefix.

Here rather than in the papers pipeline because a subscriber types them too (the liked-papers
list, subscribers/liked_input.py), and subscribers come before papers in the import graph.
"""

import re
from typing import NamedTuple

_NEW_STYLE_ID = r"(?P<new>\d{4}\.\d{4,5})"
# Archives are short ("cond-mat", "math.GT"): a bound keeps any match inside the 40-character column.
_OLD_STYLE_ID = r"(?P<old>[a-z][a-z\-]{0,19}(?:\.[A-Z]{2})?/\d{7})"
_ARXIV_ID = re.compile(
    r"^\s*(?:oai:arXiv\.org:|arXiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/)?"
    rf"(?:{_NEW_STYLE_ID}|{_OLD_STYLE_ID})(?:v(?P<version>\d+))?(?:\.pdf)?/?\s*$",
    re.IGNORECASE,
)

# What parse_arxiv_id reports for a version of more digits than this: out of any range, and not
# worth converting (int() of thousands of digits is slow, and refused past 4,300).
MAX_VERSION_DIGITS = 9
OVERLONG_VERSION = 10**MAX_VERSION_DIGITS


class ArxivId(NamedTuple):
    id: str
    version: int | None


def parse_arxiv_id(value: str | None) -> ArxivId | None:
    """The canonical id and version from any form arXiv uses, or None if it is not one.

    A version of more than MAX_VERSION_DIGITS digits comes back as OVERLONG_VERSION, for the caller
    to reject with the other out-of-range versions.
    """
    if not value or not isinstance(value, str):
        return None
    match = _ARXIV_ID.match(value)
    if not match:
        return None
    digits = match.group("version")
    if not digits:
        version = None
    elif len(digits) > MAX_VERSION_DIGITS:
        version = OVERLONG_VERSION
    else:
        version = int(digits)
    return ArxivId(match.group("new") or match.group("old"), version)
