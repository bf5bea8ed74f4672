"""Evidence sets over HTTP: admins import (all or nothing, every bad row named), anyone lists and
reads, admins choose defaults and delete; shipped sweeps import on start."""

from __future__ import annotations

import json

import pytest

from service.db import unit_of_work
from service.evidence.service import sync_shipped


def _matrix(targets=("rte", "mrpc"), seeds=(0, 1)) -> bytes:
    lines = ["source,target,seed,score,baseline,gain,metric"]
    for target in targets:
        for seed in seeds:
            for i, source in enumerate(s for s in ("mnli", "snli", "qnli") if s != target):
                lines.append(f"{source},{target},{seed},{60 + i},58,{2 + i},accuracy")
    return ("\n".join(lines) + "\n").encode()


def _post(client, headers, data: bytes, name="lab-roberta", filename="m.csv", **form):
    files = {"file": (filename, data, "text/csv")}
    fields = {"name": name, "transfer_model": "roberta-base"} | form
    return client.post("/v1/evidence", data=fields, files=files, headers=headers)


def test_import_list_read_and_delete(client, keys, named_library):
    protocol = json.dumps({"source_rows": "all", "target_rows": 1000, "epochs": 3})
    made = _post(client, keys.admin, _matrix(), protocol=protocol, note="another lab's matrix")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["transfer_model"] == "roberta-base" and body["origin"] == "import"
    assert body["default"] is True  # the first set of its model
    assert body["protocol"]["target_rows"] == 1000
    assert body["summary"] | {"metrics": None} == {
        "rows": 12,
        "targets": 2,
        "sources": 3,
        "seeds": 2,
        "pairs": 6,
        "gain_basis": "given",
        "metrics": None,
    }
    listed = client.get("/v1/evidence", headers=keys.alice).json()
    assert [s["name"] for s in listed] == ["lab-roberta"]
    page = client.get("/v1/evidence/lab-roberta?limit=3&offset=2", headers=keys.bob).json()
    assert page["total"] == 12 and len(page["rows"]) == 3
    assert page["rows"][0] == {
        "source": "qnli",
        "target": "mrpc",
        "seed": 0,
        "score": 62.0,
        "baseline": 58.0,
        "gain": 4.0,
        "metric": "accuracy",
    }
    assert client.delete("/v1/evidence/lab-roberta", headers=keys.alice).status_code == 403
    assert client.delete("/v1/evidence/lab-roberta", headers=keys.admin).status_code == 204
    assert client.get("/v1/evidence/lab-roberta", headers=keys.admin).status_code == 404


def test_only_admins_import(client, keys, named_library, table_counts):
    before = table_counts()
    refused = _post(client, keys.alice, _matrix())
    assert refused.status_code == 403 and refused.json()["error"] == "admin_required"
    assert table_counts() == before


def test_a_bad_file_is_refused_whole_with_every_row_named(
    client, keys, named_library, table_counts
):
    before = table_counts()
    data = _matrix() + b"nope,rte,0,60,58,2,accuracy\nmnli,rte,0,61,58,3,accuracy\n"
    data += b"snli,mrpc,2,nan,58,,accuracy\n"
    refused = _post(client, keys.admin, data)
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "evidence_invalid" and "nothing was imported" in body["message"]
    assert [(p["file"], p["row"], p["field"]) for p in body["problems"]] == [
        ("m.csv", 14, "source"),
        ("m.csv", 15, "seed"),
        ("m.csv", 16, "score"),
    ]
    assert body["problems"][0]["message"] == "'nope' is not a library task"
    assert table_counts() == before  # nothing half-imported


def test_form_problems_are_422_not_500(client, keys, named_library):
    bad_name = _post(client, keys.admin, _matrix(), name="../etc")
    assert bad_name.status_code == 422 and bad_name.json()["error"] == "invalid_request"
    protocol = _post(client, keys.admin, _matrix(), protocol="[1, 2]")
    assert protocol.status_code == 422 and protocol.json()["problems"][0]["field"] == "protocol"
    model = _post(client, keys.admin, _matrix(), transfer_model="@")
    assert model.status_code == 422 and model.json()["problems"][0]["field"] == "transfer_model"
    binary = _post(client, keys.admin, b"\xff\xfe\x00")
    assert binary.status_code == 422


def test_names_are_unique(client, keys, named_library):
    assert _post(client, keys.admin, _matrix()).status_code == 201
    again = _post(client, keys.admin, _matrix())
    assert again.status_code == 409 and again.json()["error"] == "evidence_set_name_taken"


@pytest.mark.parametrize("settings_overrides", [{"evidence_max_bytes": 300}])
def test_the_size_limit(client, keys, named_library, table_counts):
    before = table_counts()
    refused = _post(client, keys.admin, _matrix(targets=("rte", "mrpc"), seeds=range(6)))
    assert refused.status_code == 413 and refused.json()["error"] == "evidence_too_large"
    assert table_counts() == before


@pytest.mark.parametrize("settings_overrides", [{"evidence_max_rows": 5}])
def test_the_row_limit(client, keys, named_library):
    refused = _post(client, keys.admin, _matrix())
    assert refused.status_code == 413


def test_defaults_keep_one_protocol_per_model(client, keys, named_library):
    a = json.dumps({"source_rows": 1000})
    b = json.dumps({"source_rows": 10000})
    assert _post(client, keys.admin, _matrix(), name="a1", protocol=a).json()["default"]
    second = _post(client, keys.admin, _matrix(), name="a2", protocol=a, default="true").json()
    assert second["default"] is True  # same protocol: both stay defaults
    third = _post(client, keys.admin, _matrix(), name="b1", protocol=b, default="true").json()
    assert third["default"] is True
    defaults = {
        s["name"]: s["default"] for s in client.get("/v1/evidence", headers=keys.admin).json()
    }
    assert defaults == {"a1": False, "a2": False, "b1": True}
    patched = client.patch("/v1/evidence/a1", json={"default": True}, headers=keys.admin)
    assert patched.status_code == 200 and patched.json()["default"] is True
    defaults = {
        s["name"]: s["default"] for s in client.get("/v1/evidence", headers=keys.admin).json()
    }
    assert defaults == {"a1": True, "a2": False, "b1": False}
    # Coverage counts named sets only where a request could rank with them together
    both = {"transfer_model": "roberta-base", "evidence_set": ["a1", "b1"]}
    mixed = client.get("/v1/evidence/coverage", params=both, headers=keys.alice)
    assert mixed.status_code == 422 and "differ in protocol" in mixed.json()["message"]
    one = both | {"evidence_set": ["a1", "a2"]}
    counted = client.get("/v1/evidence/coverage", params=one, headers=keys.alice).json()
    assert counted["sets"] == ["a1", "a2"] and counted["with_record"] == 3


def test_shipped_sweeps_import_once_and_again_when_changed(
    settings, session_factory, named_library, tmp_path
):
    csv_path = tmp_path / "matrix-10k.csv"
    csv_path.write_bytes(_matrix())
    pinned = {"source_n": 10000, "target_n": 200, "encoder": "all-MiniLM-L6-v2@pkg-0.1.0-x"}
    csv_path.with_suffix(".sweep.json").write_text(json.dumps(pinned))
    shipped = settings.model_copy(update={"evidence_files": {"minilm-10k": csv_path}})
    with unit_of_work(session_factory) as session:
        assert sync_shipped(session, shipped) == ["minilm-10k"]
    with unit_of_work(session_factory) as session:
        assert sync_shipped(session, shipped) == []  # unchanged: nothing to do
    csv_path.write_bytes(_matrix(targets=("rte",)))
    with unit_of_work(session_factory) as session:
        assert sync_shipped(session, shipped) == ["minilm-10k"]
    from service.evidence.repository import by_name

    with unit_of_work(session_factory) as session:
        found = by_name(session, "minilm-10k")
        assert found.transfer_model == "all-minilm-l6-v2@pkg-0.1.0-x"
        assert found.protocol == {"source_n": 10000, "target_n": 200}
        assert found.origin == "sweep" and found.is_default and found.summary["targets"] == 1


def test_a_shipped_sweep_of_the_defaults_protocol_joins_them(
    settings, session_factory, named_library, tmp_path
):
    pinned = {"source_n": 10000, "encoder": "all-MiniLM-L6-v2@pkg-x"}
    files = {}
    for name, targets in (("matrix", ("rte",)), ("calibration", ("mrpc",))):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(_matrix(targets=targets))
        path.with_suffix(".sweep.json").write_text(json.dumps(pinned))
        files[name] = path
    other = tmp_path / "small.csv"
    other.write_bytes(_matrix())
    other.with_suffix(".sweep.json").write_text(json.dumps(pinned | {"source_n": 1000}))
    files["small"] = other
    shipped = settings.model_copy(update={"evidence_files": files})
    with unit_of_work(session_factory) as session:
        assert sync_shipped(session, shipped) == ["matrix", "calibration", "small"]
    from service.evidence.repository import all_sets

    with unit_of_work(session_factory) as session:
        defaults = {s.name: s.is_default for s in all_sets(session)}
    assert defaults == {"matrix": True, "calibration": True, "small": False}
