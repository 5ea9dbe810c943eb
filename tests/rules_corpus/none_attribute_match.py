"""re.match() found nothing and .group() was called."""

import re

EXPECT = (
    "`re.match('(\\\\d+)-(\\\\d+)', text)` returned None",
    "The pattern did not match",
)

text = "no digits here"
start = re.match(r"(\d+)-(\d+)", text).group(1)
