"""An HTML error page where JSON was expected."""

import json

EXPECT = ("HTML or XML", "<html><body>502 Bad Gateway")

json.loads("<html><body>502 Bad Gateway</body></html>")
