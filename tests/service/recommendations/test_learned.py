"""method=learned: FAISS candidates re-ordered by a ranker that learns from finished transfers."""

from __future__ import annotations

import json

from service.auth.repository import owner_by_name
from service.db import unit_of_work
from service.models import TransferResult, TransferRun
from workers.selection.rankers import LearnedConfig

GOOD, BAD = "lib05", "lib06"  # a donor that helps every measured target, and one that hurts


def _url(target: int, k: int = 11) -> str:
    return f"/v1/tasks/{target}/recommendations?k={k}&method=learned"


def _places(body: dict) -> dict[str, int]:
    return {item["task"]: place for place, item in enumerate(body["ranking"])}


def _record_runs(session_factory, ids: dict[str, int]) -> None:
    """Finished single-source runs: on four library targets GOOD gains, BAD loses, lib07 ties."""
    gains = {GOOD: 8.0, BAD: -6.0, "lib07": 0.0}
    with unit_of_work(session_factory) as session:
        admin = owner_by_name(session, "root")
        for target in ("lib00", "lib01", "lib02", "lib03"):
            for source, gain in gains.items():
                run = TransferRun(
                    owner_id=admin.id,
                    target_task_id=ids[target],
                    target_name=target,
                    sources=[{"id": ids[source], "name": source}],
                    strategy="sequential",
                    regime="limited",
                    seeds=[0, 1],
                )
                session.add(run)
                session.flush()
                session.add(
                    TransferResult(
                        run_id=run.id,
                        metric="accuracy",
                        baseline_mean=60.0,
                        baseline_std=0.0,
                        transfer_mean=60.0 + gain,
                        transfer_std=0.0,
                        gain_mean=gain,
                        gain_std=0.0,
                        per_seed={
                            "baseline": [60.0, 60.0],
                            "transfer": [60.0 + gain] * 2,
                            "gain": [gain] * 2,
                        },
                        stages=[],
                    )
                )


def test_without_evidence_learned_is_its_prior(client, keys, synthetic):
    target = synthetic["target"]
    learned = client.get(_url(target), headers=keys.alice).json()
    fused = client.get(_url(target).replace("learned", "fused"), headers=keys.alice).json()
    assert learned["method"] == "learned" and "too few to fit" in learned["note"]
    assert [r["task"] for r in learned["ranking"]] == [r["task"] for r in fused["ranking"]]
    assert all(r["components"]["learned.weight"] == 0.0 for r in learned["ranking"])


def test_finished_transfers_move_the_ranking(client, keys, synthetic, session_factory):
    target = synthetic["target"]
    before = _places(client.get(_url(target), headers=keys.alice).json())
    _record_runs(session_factory, synthetic)
    body = client.get(_url(target), headers=keys.alice).json()  # not the cached answer
    after = _places(body)
    assert "fitted on 4 measured targets (12 pairs)" in body["note"]
    assert after != before and after[GOOD] < after[BAD]
    parts = {r["task"]: r["components"] for r in body["ranking"]}
    good, bad = parts[GOOD], parts[BAD]
    # measured on 3 targets of the target's type (lib03 is a regression task), κ = 1
    n = 3 + LearnedConfig().other_type_share
    assert good["learned.weight"] == bad["learned.weight"] == n / (n + 1)
    assert good["learned.model"] > bad["learned.model"]
    assert {"learned.model", "learned.prior", "taskemb.rrf", "textemb.mean"} <= set(good)


def test_the_ranker_file_is_evidence_too(client, keys, synthetic, settings):
    evidence = [
        {"target": t, "source": s, "score": 60 + g, "gain": g, "seeds": 3}
        for t in ("lib00", "lib01", "lib02")
        for s, g in ((GOOD, 5.0), (BAD, -5.0))
    ]
    ranker = {"config": {}, "prior": "fused", "model": None, "evidence": evidence}
    settings.ranker_file.parent.mkdir(parents=True, exist_ok=True)
    settings.ranker_file.write_text(json.dumps(ranker))
    body = client.get(_url(synthetic["target"]), headers=keys.alice).json()
    assert "fitted on 3 measured targets (6 pairs)" in body["note"]
    assert _places(body)[GOOD] < _places(body)[BAD]


def test_the_fit_is_kept_until_new_evidence(client, keys, synthetic, session_factory):
    fits = client.app.state.context.learned_fits
    target = synthetic["target"]
    _record_runs(session_factory, synthetic)
    top = [r["task"] for r in client.get(_url(target), headers=keys.alice).json()["ranking"]]
    again = client.get(_url(target, k=5), headers=keys.alice).json()  # another question
    assert [r["task"] for r in again["ranking"]] == top[:5]
    assert (fits.misses, fits.hits) == (1, 1)  # fitted once, for both questions
    _record_runs(session_factory, synthetic)  # more finished runs: new evidence
    client.get(_url(target, k=5), headers=keys.alice)
    assert fits.misses == 2
