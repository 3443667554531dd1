"""CLI options override config settings and are checked like them; left out, the config's value holds."""

import pytest

from stage1_5.cli.overrides import override
from stage1_5.config import ProbeConfig
from stage1_5.errors import ConfigError


def test_options_left_out_keep_the_config_values():
    probes = override(ProbeConfig(seeds=3, permutations=7), {"seeds": None, "permutations": 9}, key="probes")
    assert (probes.seeds, probes.permutations) == (3, 9)


def test_a_bad_option_value_names_the_option_and_the_value():
    with pytest.raises(ConfigError, match=r"^--seeds 0: Input should be greater than or equal to 1$"):
        override(ProbeConfig(), {"seeds": 0}, key="probes")


def test_an_option_named_unlike_its_field_is_named_as_given():
    with pytest.raises(ConfigError, match=r"^--layers \['x'\]: "):
        override(ProbeConfig(), {"c_grid": ["x"]}, key="probes", options={"c_grid": "--layers"})


def test_a_problem_no_option_touched_names_the_config_section():
    with pytest.raises(ConfigError, match=r"^probes: outer_folds must be"):
        override(ProbeConfig.model_construct(outer_folds=1), {"seeds": 2}, key="probes")
