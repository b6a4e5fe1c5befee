"""shared.config: the regions are configuration, with no default the SDK could change."""

from __future__ import annotations

import pytest

from shared.config import DRS_REGIONS_ENV, drs_regions
from shared.exceptions import ConfigurationError


def test_regions_are_read_sorted_and_without_repeats() -> None:
    environ = {DRS_REGIONS_ENV: "us-west-2, eu-west-1,us-west-2"}

    assert drs_regions(environ) == ["eu-west-1", "us-west-2"]


def test_unset_drs_regions_is_a_configuration_error_that_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match=rf"^{DRS_REGIONS_ENV} is unset; set it") as error:
        drs_regions({})

    assert "scripts/deploy.sh" in str(error.value)


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test fixtures clear DRS_REGIONS: unset here, as in a function deployed without it.
    with pytest.raises(ConfigurationError, match="is unset"):
        drs_regions()

    monkeypatch.setenv(DRS_REGIONS_ENV, "ap-southeast-2")
    assert drs_regions() == ["ap-southeast-2"]


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_drs_regions_listing_no_region_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="lists no region"):
        drs_regions({DRS_REGIONS_ENV: value})


@pytest.mark.parametrize("value", ["us-east-1,all", "us-east-1;eu-west-1", "US-EAST-1"])
def test_drs_regions_naming_something_else_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="names what is not a region"):
        drs_regions({DRS_REGIONS_ENV: value})
