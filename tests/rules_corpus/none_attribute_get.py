"""dict.get() returned None."""

EXPECT = ("`settings.get('database')` returned None", ".get(key, default)")

settings = {"cache": {"host": "127.0.0.1"}}
host = settings.get("database").host
