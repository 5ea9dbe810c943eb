"""__getattr__ that reads a missing attribute of self."""

EXPECT = ("`__getattr__`", "object.__getattribute__")


class Proxy:
    def __getattr__(self, name):
        return getattr(self.target, name)


Proxy().value  # noqa: B018
