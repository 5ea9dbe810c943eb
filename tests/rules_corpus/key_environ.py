"""A missing environment variable."""

import os

EXPECT = (
    "environment variable RUNTIME_NARRATIVE_CORPUS_UNSET_VARIABLE is not set",
    "os.environ.get('RUNTIME_NARRATIVE_CORPUS_UNSET_VARIABLE', default)",
)

service_url = os.environ["RUNTIME_NARRATIVE_CORPUS_UNSET_VARIABLE"]
