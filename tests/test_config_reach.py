"""experiments/config_reach.py: which modules the configuration reaches, on a
hand-made package of four modules; its network run is the tests' tiny run."""

import importlib.util
import os
import sys

from conftest import TINY_RUN

from stconv.config import Config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
import config_reach

MODULES = {
    "reads.py": "def reads(config):\n    return config.training.epochs\n",
    "plain.py": "def plain(epochs, *, lr=0.1):\n    return epochs * lr\n",
    "holder.py": (
        "class Holder:\n"
        "    def __init__(self, config):\n        self.config = config\n"
        "    def use(self):\n        return self.config.data.dataset\n"
        "class Outer:\n"
        "    def __init__(self, holder):\n        self.holder = holder\n"
    ),
    "spread.py": "def spread(*values, **options):\n    return len(values) + len(options)\n",
}


def load(package, name):
    spec = importlib.util.spec_from_file_location(name[:-3], package / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reached_are_the_modules_given_the_config_or_a_holder_of_it(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    for name, text in MODULES.items():
        (package / name).write_text(text)
    reads, plain, holder, spread = (load(package, name) for name in MODULES)
    config = Config()

    def run():
        reads.reads(config)
        plain.plain(config.training.epochs, lr=config.training.learning_rate)
        holder.Outer(holder.Holder(config)).holder.use()
        spread.spread(1, section=config.data)

    reached = config_reach.trace_reach(run, package)
    assert reached == {
        "package/reads.py": "reads",
        "package/holder.py": "Holder.__init__",
        "package/spread.py": "spread",
    }
    # Nothing outside the package is recorded, the config's own modules included.
    assert config_reach.trace_reach(run, package / "elsewhere") == {}


def test_only_configuration_values_count():
    config = Config()
    assert config_reach.is_configuration(config) and config_reach.is_configuration(config.model)
    assert config_reach.is_configuration(config_reach.argparse.Namespace(epochs=1))
    assert not config_reach.is_configuration(config.data.dataset)
    assert not config_reach.is_configuration({"data": config.data})

    class Deep:
        pass

    outer = Deep()
    outer.inner = Deep()
    outer.inner.inner = Deep()
    outer.inner.inner.config = config
    assert config_reach.carries_configuration(outer)
    assert not config_reach.carries_configuration(outer, depth=2)


def test_the_traced_network_run_is_the_tests_tiny_run():
    assert config_reach.TINY_FLAGS == TINY_RUN
