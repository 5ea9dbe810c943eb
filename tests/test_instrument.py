"""narrative_class, narrative_stage, no_stage, instrument_module, auto_instrument."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime_narrative import (
    auto_instrument,
    instrument_module,
    narrative_class,
    narrative_stage,
    no_stage,
    stage,
)
from runtime_narrative.instrument import InstrumentingLoader, stage_name_for
from runtime_narrative.testing import StoryRecorder


def completed_names(recorder: StoryRecorder) -> list[str]:
    return [event.stage_name for event in recorder.stages_completed]


# -- narrative_stage -------------------------------------------------------------


@narrative_stage("Validate Order")
def validate(order: dict[str, int], *, strict: bool = False) -> int:
    """Check the order."""
    return order["quantity"]


@narrative_stage
def charge_card(amount: int) -> str:
    return f"charged {amount}"


def test_narrative_stage_runs_a_named_stage_in_a_story() -> None:
    with StoryRecorder("Orders") as recorder:
        result = validate({"quantity": 3})

    assert result == 3
    assert completed_names(recorder) == ["Validate Order"]
    assert recorder.stages_started[0].module == __name__


def test_narrative_stage_without_a_name_title_cases_the_function_name() -> None:
    with StoryRecorder("Orders") as recorder:
        charge_card(5)

    assert completed_names(recorder) == ["Charge Card"]


@pytest.mark.parametrize(
    ("function_name", "expected"),
    [
        ("validate_order", "Validate Order"),
        ("load_CSV", "Load CSV"),
        ("run", "Run"),
        ("fetch__rows_", "Fetch Rows"),
    ],
)
def test_stage_name_for(function_name: str, expected: str) -> None:
    assert stage_name_for(function_name) == expected


def test_instrumented_function_outside_a_story_runs_as_if_plain() -> None:
    assert validate({"quantity": 2}) == 2
    assert charge_card(1) == "charged 1"


def test_narrative_stage_keeps_name_doc_signature_and_wrapped() -> None:
    assert validate.__name__ == "validate"
    assert validate.__doc__ == "Check the order."
    assert list(inspect.signature(validate).parameters) == ["order", "strict"]
    assert inspect.getsource(validate).lstrip().startswith("@narrative_stage")
    assert validate.__wrapped__({"quantity": 7}) == 7  # type: ignore[attr-defined]


def test_narrative_stage_never_wraps_twice() -> None:
    again = narrative_stage("Other Name")(validate)

    with StoryRecorder("Orders") as recorder:
        again({"quantity": 1})

    assert again is validate
    assert completed_names(recorder) == ["Validate Order"]


def test_narrative_stage_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        narrative_stage("")


def test_the_users_exception_leaves_unchanged_and_names_the_stage() -> None:
    error = KeyError("quantity")

    @narrative_stage
    def reserve_stock() -> None:
        raise error

    with pytest.raises(KeyError) as caught, StoryRecorder("Orders") as recorder:
        reserve_stock()

    assert caught.value is error
    recorder.assert_stage_failed("Reserve Stock", "KeyError")


# -- narrative_class: instance methods and what is skipped ---------------------------


class Describe:
    """A descriptor that is not a function."""

    def __get__(self, obj: object, owner: type) -> str:
        return "described"


class BaseService:
    def inherited(self) -> str:
        return "inherited"


@narrative_class
class OrderService(BaseService):
    tax_rate = 0.2
    describe = Describe()

    def validate(self, order: dict[str, int]) -> int:
        return order["quantity"]

    def charge(self, amount: int) -> float:
        return amount * (1 + self.tax_rate)

    @narrative_stage("Generate PDF Report")
    def report(self) -> bytes:
        return b"%PDF"

    @no_stage
    def log(self, message: str) -> str:
        return message

    def _helper(self) -> str:
        return "private"

    @property
    def total(self) -> int:
        return 10

    @functools.cached_property
    def cached(self) -> int:
        return 11

    @classmethod
    def create(cls) -> OrderService:
        return cls()

    @staticmethod
    def normalize(value: str) -> str:
        return value.strip()


def test_narrative_class_makes_public_methods_stages() -> None:
    service = OrderService()

    with StoryRecorder("Process Order") as recorder:
        service.validate({"quantity": 2})
        service.charge(10)
        service.report()

    assert completed_names(recorder) == [
        "OrderService.validate",
        "OrderService.charge",
        "Generate PDF Report",
    ]


def test_narrative_class_skips_private_no_stage_descriptors_and_inherited() -> None:
    service = OrderService.create()

    with StoryRecorder("Process Order") as recorder:
        values = [
            service.log("hi"),
            service._helper(),
            service.total,
            service.cached,
            service.describe,
            service.inherited(),
            OrderService.normalize(" x "),
            OrderService.create().total,
        ]

    assert values == ["hi", "private", 10, 11, "described", "inherited", "x", 10]
    assert completed_names(recorder) == []
    assert isinstance(vars(OrderService)["total"], property)
    assert isinstance(vars(OrderService)["describe"], Describe)
    assert "inherited" not in vars(OrderService)


def test_narrative_class_applied_twice_wraps_once() -> None:
    first = vars(OrderService)["validate"]

    narrative_class(OrderService)

    with StoryRecorder("Process Order") as recorder:
        OrderService().validate({"quantity": 1})

    assert vars(OrderService)["validate"] is first
    assert completed_names(recorder) == ["OrderService.validate"]


def test_subclass_methods_are_named_after_the_subclass() -> None:
    @narrative_class
    class PriorityService(OrderService):
        def expedite(self) -> str:
            return "fast"

    with StoryRecorder("Process Order") as recorder:
        service = PriorityService()
        service.expedite()
        service.validate({"quantity": 1})

    assert completed_names(recorder) == [
        "PriorityService.expedite",
        "OrderService.validate",
    ]


def test_methods_outside_a_story_run_plain() -> None:
    assert OrderService().charge(10) == 12.0


# -- class and static methods, opted in --------------------------------------------


@narrative_class(instrument_classmethods=True, instrument_staticmethods=True)
class Factory:
    made = 0

    @classmethod
    def create(cls) -> Factory:
        cls.made += 1
        return cls()

    @staticmethod
    def validate(x: int) -> bool:
        return x > 0

    @classmethod
    @narrative_stage("Build Widget")
    def build(cls) -> str:
        return cls.__name__

    @narrative_stage("Assemble")
    @classmethod
    def assemble(cls) -> str:
        return cls.__name__

    @classmethod
    @no_stage
    def quiet(cls) -> str:
        return "quiet"

    @no_stage
    @staticmethod
    def silent() -> str:
        return "silent"


class SubFactory(Factory):
    pass


def test_opted_in_class_and_static_methods_are_stages_and_stay_bound() -> None:
    with StoryRecorder("Factory") as recorder:
        made = SubFactory.create()
        valid = Factory().validate(3)
        built = SubFactory.build()
        assembled = SubFactory().assemble()

    assert type(made) is SubFactory
    assert valid is True
    assert built == "SubFactory"
    assert assembled == "SubFactory"
    assert isinstance(vars(Factory)["create"], classmethod)
    assert isinstance(vars(Factory)["validate"], staticmethod)
    assert completed_names(recorder) == [
        "Factory.create",
        "Factory.validate",
        "Build Widget",
        "Assemble",
    ]


def test_no_stage_works_on_class_and_static_methods_in_either_order() -> None:
    with StoryRecorder("Factory") as recorder:
        values = [Factory.quiet(), Factory.silent()]

    assert values == ["quiet", "silent"]
    assert completed_names(recorder) == []


def test_explicit_stage_on_a_classmethod_works_without_opting_in() -> None:
    @narrative_class
    class Registry:
        @classmethod
        @narrative_stage("Register All")
        def register(cls) -> str:
            return cls.__name__

        @classmethod
        def lookup(cls) -> str:
            return "plain"

    with StoryRecorder("Registry") as recorder:
        Registry.register()
        Registry.lookup()

    assert completed_names(recorder) == ["Register All"]


# -- async, generator and async generator methods -----------------------------------


@narrative_class
class Pipeline:
    async def fetch(self, n: int) -> int:
        with stage("Inner"):
            return n * 2

    def rows(self, n: int) -> Iterator[int]:
        for i in range(n):
            received = yield i
            if received is not None:
                yield received

    async def stream(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            received = yield i
            if received is not None:
                yield received


def test_method_kinds_are_kept() -> None:
    assert inspect.iscoroutinefunction(Pipeline.fetch)
    assert inspect.isgeneratorfunction(Pipeline.rows)
    assert inspect.isasyncgenfunction(Pipeline.stream)


async def test_async_method_is_an_awaited_stage() -> None:
    async with StoryRecorder("Async") as recorder:
        result = await Pipeline().fetch(4)

    assert result == 8
    assert completed_names(recorder) == ["Inner", "Pipeline.fetch"]
    assert recorder.stages_started[1].parent_stage_name == "Pipeline.fetch"


def test_generator_method_stage_covers_the_whole_iteration() -> None:
    with StoryRecorder("Generator") as recorder:
        rows = Pipeline().rows(3)
        first = next(rows)
        during = completed_names(recorder)
        echoed = rows.send(42)
        rest = list(rows)

    assert (first, echoed, rest) == (0, 42, [1, 2])
    assert during == []
    assert completed_names(recorder) == ["Pipeline.rows"]


async def test_async_generator_method_stage_covers_the_whole_iteration() -> None:
    async with StoryRecorder("Async generator") as recorder:
        stream = Pipeline().stream(3)
        first = await stream.__anext__()
        echoed = await stream.asend(7)
        rest = [item async for item in stream]

    assert (first, echoed, rest) == (0, 7, [1, 2])
    assert completed_names(recorder) == ["Pipeline.stream"]


def test_generator_and_async_generator_outside_a_story_relay_sent_values() -> None:
    rows = Pipeline().rows(2)
    assert next(rows) == 0
    assert rows.send("x") == "x"
    assert list(rows) == [1]


async def test_async_generator_outside_a_story_relays_sent_values() -> None:
    stream = Pipeline().stream(2)

    first = await stream.__anext__()
    echoed = await stream.asend("y")
    rest = [item async for item in stream]

    assert (first, echoed, rest) == (0, "y", [1])


# -- instrument_module -------------------------------------------------------------

SERVICES = '''
"""An application module."""
import inspect
from os.path import join

from helpers import shared_helper, HelperClass


class Repository:
    def save(self, row):
        return row

    def _connect(self):
        return "connected"


def load_rows(n):
    return [join("a", str(i)) for i in range(n)]


def process(n):
    return Repository().save(load_rows(n))


def _private():
    return "private"


def own_source():
    return inspect.getsource(own_source)


CONSTANT = 3
'''

HELPERS = """
def shared_helper():
    return "helper"


class HelperClass:
    def method(self):
        return "method"
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for application modules; forgets them afterwards."""
    before = set(sys.modules)
    meta_path = list(sys.meta_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.meta_path[:] = meta_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory: Path, relative: str, source: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_instrument_module_wraps_own_functions_and_classes(app_dir: Path) -> None:
    write(app_dir, "services.py", SERVICES)
    write(app_dir, "helpers.py", HELPERS)
    services = importlib.import_module("services")

    instrument_module(services)
    with StoryRecorder("Module") as recorder:
        services.process(2)
        services._private()
        services.shared_helper()
        services.HelperClass().method()

    assert completed_names(recorder) == ["Load Rows", "Repository.save", "Process"]


def test_instrument_module_leaves_imported_names_alone(app_dir: Path) -> None:
    write(app_dir, "services.py", SERVICES)
    write(app_dir, "helpers.py", HELPERS)
    services = importlib.import_module("services")
    helpers = importlib.import_module("helpers")

    instrument_module(services)

    assert services.shared_helper is helpers.shared_helper
    assert not hasattr(helpers.shared_helper, "__wrapped__")
    assert "method" in vars(helpers.HelperClass)
    assert not hasattr(vars(helpers.HelperClass)["method"], "__wrapped__")
    assert services.CONSTANT == 3


def test_instrument_module_twice_changes_nothing(app_dir: Path) -> None:
    write(app_dir, "services.py", SERVICES)
    write(app_dir, "helpers.py", HELPERS)
    services = importlib.import_module("services")
    instrument_module(services)
    first = (services.load_rows, vars(services.Repository)["save"])

    instrument_module(services)
    with StoryRecorder("Module") as recorder:
        services.load_rows(1)

    assert (services.load_rows, vars(services.Repository)["save"]) == first
    assert completed_names(recorder) == ["Load Rows"]


def test_module_that_inspects_its_own_functions_still_works(app_dir: Path) -> None:
    write(app_dir, "services.py", SERVICES)
    write(app_dir, "helpers.py", HELPERS)
    services = importlib.import_module("services")

    instrument_module(services)

    assert "def own_source" in services.own_source()
    assert inspect.unwrap(services.load_rows).__name__ == "load_rows"


# -- auto_instrument -------------------------------------------------------------


def test_auto_instrument_instruments_app_modules_on_import(app_dir: Path) -> None:
    write(app_dir, "services.py", SERVICES)
    write(app_dir, "helpers.py", HELPERS)
    finder = auto_instrument(app_roots=[app_dir])

    services = importlib.import_module("services")
    with StoryRecorder("Auto") as recorder:
        services.process(1)
        services.shared_helper()

    assert sys.meta_path[0] is finder
    assert isinstance(services.__loader__, InstrumentingLoader)
    assert completed_names(recorder) == [
        "Load Rows",
        "Repository.save",
        "Process",
        "Shared Helper",
    ]


def test_modules_outside_the_roots_are_not_instrumented(
    app_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write(elsewhere, "vendored.py", HELPERS)
    monkeypatch.syspath_prepend(str(elsewhere))
    auto_instrument(app_roots=[app_dir])

    vendored = importlib.import_module("vendored")

    assert not hasattr(vendored.shared_helper, "__wrapped__")


def test_stdlib_site_packages_and_the_library_are_never_instrumented(
    app_dir: Path,
) -> None:
    write(app_dir, "helpers.py", HELPERS)
    # A root that contains the standard library and site-packages too.
    finder = auto_instrument(app_roots=["/"])

    app_spec = finder.find_spec("helpers", None)
    specs = [
        finder.find_spec("colorsys", None),
        finder.find_spec("pytest_timeout", None),
    ]

    assert app_spec is not None
    assert isinstance(app_spec.loader, InstrumentingLoader)
    assert all(spec is not None for spec in specs)
    assert not any(
        isinstance(spec.loader, InstrumentingLoader) for spec in specs if spec
    )
    assert finder.find_spec("runtime_narrative.instrument", None) is None


def test_removing_the_finder_stops_instrumentation(app_dir: Path) -> None:
    write(app_dir, "helpers.py", HELPERS)
    finder = auto_instrument(app_roots=[str(app_dir)])

    sys.meta_path.remove(finder)
    helpers = importlib.import_module("helpers")

    assert not hasattr(helpers.shared_helper, "__wrapped__")


def test_reload_instruments_the_new_definitions_once(app_dir: Path) -> None:
    write(app_dir, "helpers.py", HELPERS)
    auto_instrument(app_roots=[app_dir])
    helpers = importlib.import_module("helpers")
    write(app_dir, "helpers.py", HELPERS.replace('"helper"', '"reloaded"'))
    importlib.invalidate_caches()

    reloaded = importlib.reload(helpers)
    with StoryRecorder("Reload") as recorder:
        value = reloaded.shared_helper()
        reloaded.HelperClass().method()

    assert reloaded is helpers
    assert value == "reloaded"
    assert completed_names(recorder) == ["Shared Helper", "HelperClass.method"]
    assert not hasattr(inspect.unwrap(reloaded.shared_helper), "__wrapped__")
    assert reloaded.shared_helper.__wrapped__.__name__ == "shared_helper"  # type: ignore[attr-defined]


def test_namespace_packages_still_import(app_dir: Path) -> None:
    write(app_dir, "nsapp/orders/billing.py", HELPERS)
    auto_instrument(app_roots=[app_dir])

    billing = importlib.import_module("nsapp.orders.billing")
    namespace = sys.modules["nsapp"]
    with StoryRecorder("Namespace") as recorder:
        billing.shared_helper()

    assert namespace.__file__ is None
    assert list(namespace.__path__) == [str(app_dir / "nsapp")]
    assert completed_names(recorder) == ["Shared Helper"]


def test_regular_packages_and_submodules_are_instrumented(app_dir: Path) -> None:
    write(app_dir, "shop/__init__.py", "def open_shop():\n    return 'open'\n")
    write(app_dir, "shop/cart.py", "def add_item():\n    return 1\n")
    auto_instrument(app_roots=[app_dir])

    import shop.cart  # type: ignore[import-not-found]

    with StoryRecorder("Package") as recorder:
        shop.open_shop()
        shop.cart.add_item()

    assert completed_names(recorder) == ["Open Shop", "Add Item"]


def test_a_single_root_may_be_given_as_a_string(app_dir: Path) -> None:
    finder = auto_instrument(app_roots=str(app_dir))

    assert finder.app_roots == (str(app_dir.resolve()),)


def test_instrumented_loader_code_instruments_definitions_as_they_run(
    app_dir: Path,
) -> None:
    write(
        app_dir,
        "main_like.py",
        """
        calls = []

        def first():
            return "first"

        if True:
            def second():
                return "second"

        class Job:
            def run(self):
                return "run"

        RESULT = first()
        """,
    )
    finder = auto_instrument(app_roots=[app_dir])
    spec = finder.find_spec("main_like", None)
    assert spec is not None
    assert spec.loader is not None
    namespace: dict[str, Any] = {"__name__": "main_like"}

    with StoryRecorder("Run as main") as recorder:
        exec(spec.loader.get_code("main_like"), namespace)  # type: ignore[attr-defined]
        namespace["second"]()
        namespace["Job"]().run()

    assert namespace["RESULT"] == "first"
    assert completed_names(recorder) == ["First", "Second", "Job.run"]
