"""A program that is not on PATH."""

import subprocess

EXPECT = (
    "The program 'runtime-narrative-corpus-no-such-program' was not found on PATH",
)

subprocess.run(["runtime-narrative-corpus-no-such-program", "--version"])
