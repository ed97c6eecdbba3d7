"""The config keys are documented once per key, with the schema's own defaults."""

from __future__ import annotations

import re

import yaml
from conftest import PROJECT

from dbn_backfill.config import required_keys, schema_defaults
from dbn_backfill.paths import config_schema

ROW = re.compile(r"^\| `(?P<key>[a-z_]+)` \| (?P<default>[^|]+) \| (?P<meaning>.+) \|$")


def documented() -> dict[str, str]:
    rows = {}
    for line in (PROJECT / "config" / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match["key"]] = match["default"].strip()
    return rows


def test_every_schema_key_is_documented_with_its_default():
    schema = yaml.safe_load(config_schema().read_text())
    rows = documented()
    assert set(rows) == set(schema["properties"])
    for key, default in schema_defaults().items():
        shown = default if not isinstance(default, bool) else str(default).lower()
        assert rows[key] == f"`{shown}`", key
    for key in required_keys():
        assert rows[key] == "(required)", key
    for key in set(rows) - set(schema_defaults()) - set(required_keys()):
        assert rows[key].startswith("("), key


def test_demo_config_sets_no_default_twice():
    demo = yaml.safe_load((PROJECT / "config" / "config.yaml").read_text())
    assert set(demo) == set(required_keys())
