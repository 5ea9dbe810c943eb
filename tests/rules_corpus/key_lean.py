"""A missing key in lean mode: the key and the mapping's name."""

EXPECT = ("The key 'hots' is not in `config`", "config.get('hots', default)")

config = {"host": "127.0.0.1", "port": 5432}
print(config["hots"])
