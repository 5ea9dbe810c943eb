"""An attribute read on a None returned by a lookup."""

EXPECT = ("`user` was None when `.name` was read", "if user is None:")
MODE = "rich"


def find_user(users, wanted):
    for user in users:
        if user["id"] == wanted:
            return user
    return None


def greet(users):
    user = find_user(users, 3)
    return user.name


greet([{"id": 1}])
