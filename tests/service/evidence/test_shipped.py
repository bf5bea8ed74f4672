"""The evidence sets ``scripts/main.sh`` and the Dockerfile ship: each file reads as a sweep's
results, has its pinned settings beside it, names only tasks of the shared library, and the two
deployments ship the same sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workers.selection.results import read_results

REPO = Path(__file__).resolve().parents[3]


def _main_sh_sets() -> dict[str, str]:
    text = (REPO / "scripts" / "main.sh").read_text()
    found = re.search(r"TASKREC_EVIDENCE_FILES:-'(\{.*\})'", text)
    assert found, "main.sh sets no default TASKREC_EVIDENCE_FILES"
    return json.loads(found.group(1))


def _dockerfile_sets() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text()
    found = re.search(r"TASKREC_EVIDENCE_FILES='(\{.*\})'", text)
    assert found, "the Dockerfile sets no TASKREC_EVIDENCE_FILES"
    return json.loads(found.group(1))


def test_main_sh_and_the_dockerfile_ship_the_same_sets_and_copy_their_files() -> None:
    shipped, docker = _main_sh_sets(), _dockerfile_sets()
    assert shipped.keys() == docker.keys()
    dockerfile = (REPO / "Dockerfile").read_text()
    for name, path in shipped.items():
        assert docker[name] == f"/app/{path}", name
        pinned = Path(path).with_suffix(".sweep.json")
        assert re.search(rf"COPY [^\n]*{re.escape(path)}[^\n]*{re.escape(str(pinned))}", dockerfile)


@pytest.mark.parametrize("name", list(_main_sh_sets()))
def test_each_shipped_set_reads_and_names_library_tasks(name: str, tasks_root: Path) -> None:
    path = REPO / _main_sh_sets()[name]
    rows = read_results(path)
    assert rows, f"{path} holds no rows"
    pinned = json.loads(path.with_suffix(".sweep.json").read_text())
    assert pinned["encoder"] and pinned["source_n"]  # what the import records as its protocol
    library = {p.parent.name for p in tasks_root.glob("*/task.json")}
    named = {r.source for r in rows} | {r.target for r in rows}
    assert named <= library, sorted(named - library)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))  # an import refuses duplicate (source, target, seed)
