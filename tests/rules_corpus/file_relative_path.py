"""A relative path resolves against the working directory."""

EXPECT = ("relative to the working directory",)

open("runtime-narrative-corpus-no-such-file.txt")  # noqa: SIM115
