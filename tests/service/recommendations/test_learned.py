"""method=learned: FAISS candidates re-ordered by a ranker that learns from measured transfers of
the request's transfer model: evidence sets and the owner's own finished transfers."""

from __future__ import annotations

from service.auth.repository import owner_by_name
from service.db import unit_of_work
from service.models import TransferResult, TransferRun
from workers.selection.evidence import transfer_model_name
from workers.selection.rankers import LearnedConfig

GOOD, BAD = "lib05", "lib06"  # a donor that helps every measured target, and one that hurts


def _url(target: int, k: int = 11, extra: str = "") -> str:
    return f"/v1/tasks/{target}/recommendations?k={k}&method=learned{extra}"


def _places(body: dict) -> dict[str, int]:
    return {item["task"]: place for place, item in enumerate(body["ranking"])}


def _record_runs(session_factory, ids: dict[str, int], owner: str = "alice") -> None:
    """``owner``'s finished single-source runs: on four library targets GOOD gains, BAD loses,
    lib07 ties."""
    gains = {GOOD: 8.0, BAD: -6.0, "lib07": 0.0}
    with unit_of_work(session_factory) as session:
        admin = owner_by_name(session, owner)
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


def test_without_evidence_learned_says_so_and_ranks_by_embeddings(
    client, keys, synthetic, settings
):
    target = synthetic["target"]
    learned = client.get(_url(target), headers=keys.alice).json()
    sized = client.get(_url(target).replace("learned", "sized"), headers=keys.alice).json()
    # no saved evaluation: the evidence_free_method setting's (sized) ranks
    assert learned["method"] == "sized"
    assert [r["task"] for r in learned["ranking"]] == [r["task"] for r in sized["ranking"]]
    evidence = learned["evidence"]
    assert evidence["used"] is False and evidence["sets"] == [] and evidence["pairs"] == 0
    model = transfer_model_name(settings.model)  # the service's own (tiny) encoder
    assert evidence["reason"] == f"no measured transfers of {model!r}"
    assert "ranked by sized, the evidence_free_method setting's: of the" in learned["note"]
    assert sized["evidence"] is None and sized["transfer_model"] is None


def test_finished_transfers_move_the_ranking(client, keys, synthetic, session_factory, settings):
    target = synthetic["target"]
    before = _places(client.get(_url(target), headers=keys.alice).json())
    _record_runs(session_factory, synthetic)
    body = client.get(_url(target), headers=keys.alice).json()  # not the cached answer
    after = _places(body)
    assert body["method"] == "learned"
    assert "fitted on 4 measured targets (12 pairs)" in body["note"]
    assert body["evidence"] == {
        "transfer_model": transfer_model_name(settings.model),
        "sets": [],
        "protocol": None,
        "own_transfers": 24,
        "targets": 4,
        "pairs": 12,
        "used": True,
        "reason": None,
    }
    assert after != before and after[GOOD] < after[BAD]
    parts = {r["task"]: r["components"] for r in body["ranking"]}
    good, bad = parts[GOOD], parts[BAD]
    # measured on 3 targets of the target's type (lib03 is a regression task), κ = 1
    n = 3 + LearnedConfig().other_type_share
    assert good["learned.weight"] == bad["learned.weight"] == n / (n + 1)
    assert good["learned.model"] > bad["learned.model"]
    assert {"learned.model", "learned.prior", "taskemb.rrf", "textemb.mean"} <= set(good)
    assert good["learned.donor_targets"] == 4.0 and "measured.gain" not in good
    # Asked about a measured target, the answer shows what was measured there
    measured = client.get(_url(synthetic["lib00"]), headers=keys.alice).json()
    parts = {r["task"]: r["components"] for r in measured["ranking"]}
    assert parts[GOOD]["measured.gain"] == 8.0 and parts[GOOD]["measured.seeds"] == 2.0
    assert parts[BAD]["measured.gain"] == -6.0 and "measured.gain" not in parts["lib08"]


def test_an_owners_transfers_are_evidence_for_that_owner_until_shared(
    client, keys, synthetic, session_factory
):
    _record_runs(session_factory, synthetic, owner="alice")
    target = synthetic["lib09"]  # a library task: bob may ask about it
    bobs = client.get(_url(target), headers=keys.bob).json()
    assert bobs["evidence"]["used"] is False and bobs["evidence"]["own_transfers"] == 0
    runs = client.get("/v1/transfers", headers=keys.alice).json()["items"]
    assert len(runs) == 12
    refused = client.put(f"/v1/transfers/{runs[0]['id']}/shared", headers=keys.alice)
    assert refused.status_code == 403
    for run in runs:
        shared = client.put(f"/v1/transfers/{run['id']}/shared", headers=keys.admin)
        assert shared.status_code == 200 and shared.json()["shared"] is True
    bobs = client.get(_url(target), headers=keys.bob).json()
    assert bobs["evidence"]["used"] is True and bobs["evidence"]["own_transfers"] == 24


def _import_lab(client, keys, name: str, model: str, good: str = GOOD, bad: str = BAD):
    """An evidence set of ``model`` where ``good`` helps three library targets, ``bad`` hurts."""
    lines = ["source,target,seed,score,baseline"]
    for target in ("lib00", "lib01", "lib02"):
        for seed in (0, 1):
            lines += [f"{good},{target},{seed},65,60", f"{bad},{target},{seed},55,60"]
            lines += [f"lib07,{target},{seed},60.5,60"]
    files = {"file": (f"{name}.csv", "\n".join(lines).encode(), "text/csv")}
    form = {"name": name, "transfer_model": model}
    made = client.post("/v1/evidence", data=form, files=files, headers=keys.admin)
    assert made.status_code == 201, made.text
    return made


def test_an_imported_set_ranks_for_its_transfer_model_only(client, keys, synthetic):
    made = _import_lab(client, keys, "roberta-lab", "FacebookAI/roberta-base")
    assert made.json()["transfer_model"] == "roberta-base" and made.json()["default"] is True
    target = synthetic["lib09"]
    body = client.get(_url(target, extra="&transfer_model=roberta-base"), headers=keys.bob).json()
    assert body["method"] == "learned" and body["transfer_model"] == "roberta-base"
    assert body["evidence"]["sets"] == ["roberta-lab"] and body["evidence"]["targets"] == 3
    assert "evidence of roberta-base: set(s) roberta-lab" in body["note"]
    assert _places(body)[GOOD] < _places(body)[BAD]
    minilm = client.get(_url(target), headers=keys.bob).json()  # another model: not its evidence
    assert minilm["evidence"]["used"] is False and minilm["evidence"]["sets"] == []
    named = client.get(_url(target, extra="&evidence_set=roberta-lab"), headers=keys.bob)
    assert named.status_code == 422 and named.json()["error"] == "evidence_mismatch"
    missing = client.get(_url(target, extra="&evidence_set=nope"), headers=keys.bob)
    assert missing.status_code == 404 and missing.json()["error"] == "evidence_set_not_found"


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


def test_a_set_imported_after_a_deletion_is_not_answered_by_the_old_sets_fit(
    client, keys, synthetic
):
    """SQLite gives the new set the deleted one's id: the cached fit and answer must not carry
    over (the set's file hash is part of the evidence stamp)."""

    url = _url(synthetic["lib09"], extra="&transfer_model=roberta-base")
    _import_lab(client, keys, "lab", "roberta-base")
    before = _places(client.get(url, headers=keys.bob).json())
    assert before[GOOD] < before[BAD]
    assert client.delete("/v1/evidence/lab", headers=keys.admin).status_code == 204
    _import_lab(client, keys, "lab", "roberta-base", good=BAD, bad=GOOD)  # the opposite record
    after = _places(client.get(url, headers=keys.bob).json())
    assert after[BAD] < after[GOOD]
