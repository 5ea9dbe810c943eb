"""dict.pop() of a key that is not there."""

EXPECT = ("The key 'colour' is not in `style`", "Did you mean 'color'?")
MODE = "rich"


def take_colour(style):
    return style.pop("colour")


take_colour({"color": "red", "size": 3})
