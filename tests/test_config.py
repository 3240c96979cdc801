"""VmapConfig rejects what the kernel could not represent and accepts the edges it can."""

from __future__ import annotations

import pytest

from impl.config import PAGE_SIZE, VmapConfig


def test_a_range_ending_one_page_below_2_64_is_accepted() -> None:
    base = (1 << 64) - 5 * PAGE_SIZE
    cfg = VmapConfig(pages=4, base=base)
    assert cfg.end == (1 << 64) - PAGE_SIZE


def test_a_range_whose_exclusive_end_is_2_64_is_rejected() -> None:
    # va_end would be stored as 0 in an unsigned long.
    with pytest.raises(ValueError, match="below 2\\^64"):
        VmapConfig(pages=4, base=(1 << 64) - 4 * PAGE_SIZE)


@pytest.mark.parametrize("kwargs, message", [
    ({"pages": 0}, "pages must be positive"),
    ({"page_size": 3000}, "power of two"),
    ({"base": PAGE_SIZE + 1}, "not page aligned"),
    ({"nr_cpus": 0}, "nr_cpus must be positive"),
    ({"lazy_max": -1}, "lazy_max"),
    ({"nr_nodes": 256}, "nr_nodes must be in 1..255"),
    ({"zone_pages": 0}, "zone_pages"),
])
def test_bad_settings_get_one_clear_message(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VmapConfig(**kwargs)  # type: ignore[arg-type]
