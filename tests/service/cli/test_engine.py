"""The engine commands as a user runs them: JSON shapes, caching, and one-line user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import get_settings
from workers.data.writer import save_task_dir

runner = CliRunner()


@pytest.fixture()
def env(tmp_path, monkeypatch, tiny_encoder_dir, toy_tasks) -> Path:
    """A tasks root with the toy tasks, a data dir, and the tiny encoder as the model."""
    root = tmp_path / "tasks"
    for task in toy_tasks.values():
        save_task_dir(task, root / task.name)
    monkeypatch.setenv("TASKREC_TASKS_ROOT", str(root))
    monkeypatch.setenv("TASKREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TASKREC_MODEL", str(tiny_encoder_dir))
    monkeypatch.setenv("TASKREC_MAX_EXAMPLES", "16")
    monkeypatch.setenv("TASKREC_DEVICE", "cpu")
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_similar_json_ranks_library_and_never_the_target(env):
    args = ("similar", "toy_sentiment", "--library", str(env), "--k", "all", "--json")
    result = _run(*args, "--method", "fused")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"] == "toy_sentiment" and data["method"] == "fused"
    assert "tiny-bert" in data["model"]
    names = [r["task"] for r in data["ranking"]]
    assert sorted(names) == ["toy_choice", "toy_ner", "toy_qa", "toy_sts"]
    scores = [r["score"] for r in data["ranking"]]
    assert scores == sorted(scores, reverse=True)
    assert "taskemb.cls" in data["ranking"][0]["components"]
    assert data["evaluation"] == {} and data["best"] is None  # no ranker file here
    # sized: the fused ranking and the largest-first one, fused; each source shows its rows
    sized = json.loads(_run(*args, "--method", "sized").stdout)["ranking"]
    # The default method is learned; with no ranker file there is no evidence to fit it on,
    # so it ranks as the API does: by the evidence_free_method setting's method, and says so.
    default = _run(*args)
    data = json.loads(default.stdout)
    assert data["method"] == "sized" and data["ranking"] == sized
    assert "no ranker file at" in data["note"] and "ranked by sized" in data["note"]
    assert "ranked by sized" in default.stderr
    table = _run("similar", "toy_sentiment", "--library", str(env))
    assert "sized has no measured record here" in table.stdout
    assert sorted(r["task"] for r in sized) == sorted(names)
    rows = {r["task"]: r["components"]["size.train_rows"] for r in sized}
    assert all(rows[name] > 0 for name in names)
    table = _run("similar", "toy_sentiment", "--library", str(env), "--method", "sized").stdout
    assert "rows=" in table  # a count beside the similarities, not sorted among them


def test_similar_learned_uses_the_ranker_file(env, tmp_path, monkeypatch):
    # Evidence on three other targets: toy_choice always the best donor, toy_qa the worst.
    evidence = [
        {"target": t, "source": s, "score": 50 + g, "gain": g, "seeds": 3}
        for t in ("toy_ner", "toy_sts", "toy_qa")
        for s, g in (("toy_choice", 6.0), ("toy_sentiment", 1.0), ("toy_qa", -4.0))
        if s != t
    ]
    evaluation = [  # as `taskrec evaluate --save-ranker` stores it
        {"scope": "all", "method": m, "targets": 3, "rho": rho, "ndcg": 0.9, "regret@3": r3}
        for m, rho, r3 in (("learned", 2.0, 0.5), ("fused", 1.5, 1.0), ("oracle", 1.0, 0.0))
    ]
    ranker = tmp_path / "ranker.json"
    saved = {"config": {}, "prior": "fused", "model": None, "evidence": evidence}
    ranker.write_text(json.dumps(saved | {"evaluation": evaluation}))
    monkeypatch.setenv("TASKREC_RANKER_PATH", str(ranker))
    get_settings.cache_clear()
    args = ("similar", "toy_sentiment", "--library", str(env), "--method", "learned", "--json")
    result = _run(*args, "--k", "all")
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.stdout)["ranking"]
    names = [r["task"] for r in ranking]
    assert sorted(names) == ["toy_choice", "toy_ner", "toy_qa", "toy_sts"]
    assert names.index("toy_choice") < names.index("toy_qa")
    parts = {r["task"]: r["components"] for r in ranking}
    assert parts["toy_choice"]["weight"] > 0 and parts["toy_ner"]["weight"] == 0.0  # no record
    assert parts["toy_choice"]["model"] > parts["toy_qa"]["model"]
    # The method's measured record comes with its ranking, and the best measured method.
    data = json.loads(result.stdout)
    assert data["evaluation"]["all"]["rho"] == 2.0 and data["best"] == "fused"
    table = _run(*args[:-1])
    assert "learned on 3 held-out targets: ρ 2.00, NDCG 0.900, Regret@3 0.50%" in table.stdout
    assert "(best measured: fused)" in table.stdout


def test_similar_second_run_recomputes_nothing(env, monkeypatch):
    assert (
        _run("similar", "toy_sts", "--library", str(env), "--method", "textemb", "--json").exit_code
        == 0
    )
    import workers.embeddings

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed an embedding that was cached")

    monkeypatch.setattr(workers.embeddings, "compute_textemb", refuse)
    monkeypatch.setattr("workers.embedder.compute_textemb", refuse)
    result = _run(
        "similar", "toy_sts", "--library", str(env), "--method", "textemb", "--k", "2", "--json"
    )
    assert result.exit_code == 0 and len(json.loads(result.stdout)["ranking"]) == 2


def test_embed_and_finetune_print_json(env):
    embedded = json.loads(_run("embed", "toy_ner", "--method", "textemb", "--json").stdout)
    assert len(embedded["embeddings"]["textemb"]["components"]["mean"]) == 32
    tuned = _run("finetune", "toy_sentiment", "--epochs", "1", "--seeds", "0,1", "--json")
    data = json.loads(tuned.stdout)
    assert data["metric"] == "accuracy" and len(data["score"]["values"]) == 2


def test_transfer_prints_baseline_and_gain(env):
    result = _run(
        "transfer",
        "--source",
        "toy_sts",
        "--target",
        "toy_sentiment",
        "--epochs",
        "1",
        "--source-epochs",
        "1",
        "--json",
    )
    data = json.loads(result.stdout)
    assert data["sources"] == ["toy_sts"] and {"baseline", "transfer", "gain"} <= set(data)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("similar", "nope", "--library", "."), "no task found"),
        (("similar", "toy_sts", "--library", "/no/such/dir"), "not found"),
        (("similar", "toy_sts", "--library", ".", "--method", "magic"), "unknown method"),
        (("similar", "toy_sts", "--library", ".", "--k", "zero"), "--k takes"),
        (("finetune", "toy_sts", "--seeds", "a,b"), "--seeds takes"),
        (("embed", "toy_sts", "--model", "no-such/encoder-xyz"), "no-such/encoder-xyz"),
    ],
)
def test_user_errors_are_one_line_without_traceback(env, args, message):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_invalid_task_data_names_file_row_and_field(env):
    bad = env / "toy_sts" / "train.jsonl"
    bad.write_text(
        '{"id": "1", "text": "a", "label": 1.0}\n{"id": "2", "text": "b", "label": "high"}\n'
    )
    result = runner.invoke(app, ["embed", "toy_sts"])
    assert result.exit_code == 2
    assert "train.jsonl:2" in result.stderr and "label" in result.stderr


def _unlabelled_copy(root: Path, name: str, new_name: str) -> Path:
    """``name``'s folder as task ``new_name`` with every label removed from its rows."""
    folder = root / new_name
    folder.mkdir()
    manifest = json.loads((root / name / "task.json").read_text())
    (folder / "task.json").write_text(json.dumps({**manifest, "name": new_name}))
    for split in (root / name).glob("*.jsonl"):
        rows = [json.loads(line) for line in split.read_text().splitlines()]
        lines = [json.dumps({k: v for k, v in r.items() if k != "label"}) for r in rows]
        (folder / split.name).write_text("\n".join(lines) + "\n")
    return folder


def test_an_unlabelled_target_is_embedded_with_labels_from_a_donors_head(env, tmp_path):
    target = _unlabelled_copy(env, "toy_sentiment", "new_sentiment")
    refused = _run("embed", str(target), "--method", "taskemb")
    assert refused.exit_code == 2 and "--label-donor" in refused.stderr
    mismatched = _run("embed", str(target), "--method", "taskemb", "--label-donor", "toy_ner")
    assert mismatched.exit_code == 2 and "its labels are not" in mismatched.stderr
    args = ["embed", str(target), "--method", "taskemb", "--label-donor", "toy_sentiment"]
    embedded = _run(*args, "--json")
    assert embedded.exit_code == 0, embedded.output
    fisher = json.loads(embedded.stdout)["embeddings"]["taskemb"]["components"]
    assert fisher and all(min(v) >= 0 and max(v) > 0 for v in fisher.values())
    ranked = _run("similar", str(target), "--library", str(env), "--k", "all", "--json")
    assert ranked.exit_code == 0, ranked.output
    names = [r["task"] for r in json.loads(ranked.stdout)["ranking"]]
    assert "toy_sentiment" in names and "new_sentiment" not in names
    assert "from a head trained on toy_sentiment" in ranked.stderr.replace("\n", "")


def test_similar_says_when_it_leaves_out_a_library_task_named_as_the_target(env, tmp_path):
    copy = tmp_path / "more" / "toy_sentiment"
    shutil.copytree(env / "toy_sentiment", copy)
    args = ["similar", "toy_sentiment", "--library", str(env), "--library", str(copy.parent)]
    result = runner.invoke(app, [*args, "--k", "all", "--json"])
    assert result.exit_code == 0, result.output
    assert "toy_sentiment" not in [r["task"] for r in json.loads(result.stdout)["ranking"]]
    assert f"left out {copy.resolve()}" in result.stderr.replace("\n", "")


def test_similar_refuses_two_library_tasks_of_one_name(env, tmp_path):
    copy = tmp_path / "more" / "toy_ner_again"
    shutil.copytree(env / "toy_ner", copy)
    result = runner.invoke(
        app, ["similar", "toy_sts", "--library", str(env), "--library", str(copy.parent)]
    )
    assert result.exit_code == 2
    assert "two library tasks are named 'toy_ner'" in result.stderr


def test_finetune_saves_a_checkpoint_with_its_config(env, tmp_path):
    out = tmp_path / "ckpt"
    result = _run("finetune", "toy_sentiment", "--epochs", "1", "--save", str(out), "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "checkpoint.json").read_text())
    assert saved["task"] == "toy_sentiment" and saved["train"]["epochs"] == 1.0
    assert saved["metrics"]["toy_sentiment"]["score"] == json.loads(result.stdout)["score"]["mean"]
    assert (out / "encoder" / "model.safetensors").is_file()
    assert (out / "heads.safetensors").is_file() and "toy_sentiment" in saved["heads"]


def test_a_bad_setting_is_named_before_any_command_runs(env, monkeypatch):
    monkeypatch.setenv("TASKREC_TASKEMB_HEAD_TRAINING", "bogus")
    get_settings.cache_clear()
    result = runner.invoke(app, ["embed", "toy_sts"])
    assert result.exit_code == 2
    assert "TASKREC_TASKEMB_HEAD_TRAINING='bogus'" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_strategies_and_unfreezing_are_checked_choices_from_the_registry(env):
    helped = runner.invoke(app, ["transfer", "--help"], env={"COLUMNS": "200"})
    assert "sequential|multitask|joint" in helped.output and "none|gradual" in helped.output
    bad = runner.invoke(
        app, ["transfer", "--source", "toy_sts", "--target", "toy_ner", "--strategy", "both"]
    )
    assert bad.exit_code == 2 and "'both' is not one of" in bad.output
