"""``taskrec sweep`` and ``taskrec evaluate`` as a user runs them, on the toy tasks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.cli.selection import register
from service.settings import get_settings
from workers.data.writer import save_task_dir
from workers.selection.results import read_results

runner = CliRunner()
app = typer.Typer()
register(app)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def env(tmp_path, monkeypatch, tiny_encoder_dir, toy_tasks) -> Path:
    """A tasks root with the toy tasks, a data dir, and the tiny encoder as the model."""
    import torch

    root = tmp_path / "tasks"
    for task in toy_tasks.values():
        save_task_dir(task, root / task.name)
    monkeypatch.setenv("TASKREC_TASKS_ROOT", str(root))
    monkeypatch.setenv("TASKREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TASKREC_CACHE_PATH", str(tmp_path / "cache"))  # never the repository's
    monkeypatch.setenv("TASKREC_MODEL", str(tiny_encoder_dir))
    monkeypatch.setenv("TASKREC_MAX_EXAMPLES", "16")
    monkeypatch.setenv("TASKREC_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a busy 2-core machine
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()
    torch.set_num_threads(threads)


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_sweep_writes_the_matrix_and_a_second_run_does_nothing(env, tmp_path) -> None:
    out = tmp_path / "matrix.csv"
    args = ["sweep", "--sources", "toy_sts", "--targets", "toy_sentiment,toy_ner", "--seeds", "0"]
    args += ["--max-steps", "2", "--batch-size", "8", "--max-length", "32", "--out", str(out)]
    first = json.loads(_run(*args, "--json").stdout)
    assert (first["transfers_run"], first["baselines_run"], first["sources_trained"]) == (2, 2, 1)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["source"], r["target"]) for r in rows] == [
        ("toy_sts", "toy_sentiment"),
        ("toy_sts", "toy_ner"),
    ]
    assert (tmp_path / "data" / "checkpoints").is_dir()  # the settings' default place
    again = json.loads(_run(*args, "--json").stdout)
    assert (again["transfers_run"], again["baselines_run"], again["sources_cached"]) == (0, 0, 0)
    assert again["skipped_finished"] == 4  # 2 transfers + 2 baselines


def test_a_sweep_killed_mid_way_resumes_without_recomputing_a_finished_run(env, tmp_path) -> None:
    out = tmp_path / "matrix.csv"
    args = ["sweep", "--sources", "toy_sts", "--targets", "toy_sentiment,toy_ner"]
    args += ["--seeds", "0,1,2,3", "--max-steps", "6", "--batch-size", "8", "--max-length", "32"]
    args += ["--threads", "1", "--out", str(out)]
    command = [sys.executable, "-c", "from service.cli import app; app()", *args]
    sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (out.is_file() and read_results(out)):  # the first transfer is in: kill -9
        assert sweep.poll() is None, sweep.stderr.read().decode()
        assert time.monotonic() < deadline, "no transfer finished in 5 minutes"
        time.sleep(0.02)
    sweep.kill()
    sweep.wait()
    sweep.stderr.close()
    finished = {r.key for r in read_results(out)}
    assert 1 <= len(finished) < 8  # killed with runs left to do

    again = json.loads(_run(*args, "--json").stdout)
    assert again["transfers_run"] == 8 - len(finished)  # nothing finished is run again
    rows = read_results(out)
    assert len(rows) == len({r.key for r in rows}) == 8  # every run once, none twice
    assert finished <= {r.key for r in rows}


def test_a_fusion_sweep_fuses_every_source_and_evaluate_refuses_its_rows(env, tmp_path) -> None:
    out = tmp_path / "fusion.csv"
    args = ["sweep", "--strategy", "fusion", "--sources", "toy_sts,toy_sentiment"]
    args += ["--targets", "toy_choice", "--seeds", "0", "--max-steps", "2", "--batch-size", "8"]
    args += ["--max-length", "32", "--out", str(out)]
    # A target with one other source is refused before anything is written
    lone = ["sweep", "--strategy", "fusion", "--sources", "toy_sts,toy_sentiment"]
    lone += ["--targets", "toy_sentiment", "--seeds", "0", "--out", str(tmp_path / "lone.csv")]
    refused = runner.invoke(app, lone)
    assert refused.exit_code == 2 and "target toy_sentiment has 1 source(s)" in refused.output
    assert list(tmp_path.glob("lone*")) == []
    first = json.loads(_run(*args, "--json").stdout)
    assert (first["transfers_run"], first["baselines_run"], first["sources_trained"]) == (1, 1, 2)
    assert [r.key for r in read_results(out)] == [("toy_sts+toy_sentiment", "toy_choice", 0)]
    assert json.loads(out.with_suffix(".sweep.json").read_text())["strategy"] == "fusion"
    refused = runner.invoke(app, ["evaluate", str(out), "--methods", "random"])
    assert refused.exit_code == 2
    assert "toy_sts+toy_sentiment -> toy_choice (seed 0) fused several sources" in refused.output


def _toy_matrix(path: Path) -> Path:
    """Every toy task to every other, one seed: gains favour big sources, as DataSize would."""
    names = ["toy_sentiment", "toy_sts", "toy_choice", "toy_qa", "toy_ner"]
    sizes = {"toy_sentiment": 48, "toy_sts": 24, "toy_choice": 16, "toy_qa": 8, "toy_ner": 16}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "target", "seed", "score", "baseline", "gain", "metric"])
        for target in names:
            for source in names:
                if source != target:
                    gain = sizes[source] / 10 - len(target) / 20
                    writer.writerow([source, target, 0, 50 + gain, 50, gain, "accuracy"])
    return path


def test_evaluate_prints_json_writes_a_plot_and_saves_the_ranker(env, tmp_path) -> None:
    results = _toy_matrix(tmp_path / "toy.csv")
    plot, ranker = tmp_path / "eval.png", tmp_path / "ranker.json"
    result = _run(
        "evaluate",
        str(results),
        "--library",
        str(env),
        "--methods",
        "random,datasize,textemb",
        "--methods",
        "learned,oracle",
        "--within-type",
        "--plot",
        str(plot),
        "--save-ranker",
        str(ranker),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    summary = {(r["scope"], r["method"]): r for r in data["summary"]}
    assert summary[("all", "random")]["rho"] == 2.5  # (4 + 1) / 2 for every target
    assert summary[("all", "datasize")]["rho"] == 1.0  # this toy matrix rewards size alone
    assert summary[("all", "oracle")]["regret@3"] == 0.0
    assert {m for _, m in summary} == {"random", "datasize", "textemb", "learned", "oracle"}
    # The five toy tasks have five different types: within-type, nothing is left to rank.
    assert len(data["skipped"]) == 5 and {s["scope"] for s in data["skipped"]} == {"within"}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads(ranker.read_text())["evidence"]) == 20


def test_evaluate_writes_the_results_page_and_its_figures(env, tmp_path) -> None:
    results = _toy_matrix(tmp_path / "toy.csv")
    page = tmp_path / "docs" / "results.md"
    methods = "random,datasize,semb,taskemb,textemb,learned,oracle"
    result = _run(
        "evaluate",
        str(results),
        *("--library", str(env), "--methods", methods, "--report", str(page)),
        *("--fresh-targets", "toy_qa,toy_ner"),
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "--report" in text and "--fresh-targets=toy_qa,toy_ner" in text  # reruns as it ran
    fresh = text.split("## Targets measured after the ranker's settings were chosen")[1]
    assert "toy_ner, toy_qa (2 targets)" in fresh and "| all | learned | 2 |" in fresh
    assert "| source \\ target |" in text and "| *baseline score* |" in text
    assert "learned beats datasize on ρ" in text  # the goals, met or MISSED, are stated
    assert "Regret@3 ≤ 1%" in text
    assert "## The learned ranker, fitted on every row" in text
    for figure in ("evaluation", "gains", "map"):
        assert f"results/{figure}.png" in text
        assert (tmp_path / "docs" / "results" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_table_and_user_errors(env, tmp_path) -> None:
    results = _toy_matrix(tmp_path / "toy.csv")
    table = _run("evaluate", str(results), "--methods", "random,datasize", "--per-target")
    assert table.exit_code == 0, table.output
    assert "datasize" in table.stdout and "toy_qa" in table.stdout
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no results file" in missing.output
    unknown = runner.invoke(app, ["evaluate", str(results), "--methods", "magic"])
    assert unknown.exit_code == 2 and "unknown method 'magic'" in unknown.output
    no_task = runner.invoke(app, ["sweep", "--sources", "ghost", "--targets", "toy_sts"])
    assert no_task.exit_code == 2 and "ghost" in no_task.output


def test_evaluate_ranks_the_embedded_library_and_leaves_out_what_it_cannot(
    env, tmp_path, toy_tasks
) -> None:
    """``--pool library``: a bad folder and a task with no cached embeddings under --library
    are left out of the pool, said so, and nothing is computed for them."""
    import dataclasses

    results = _toy_matrix(tmp_path / "toy.csv")
    extra = tmp_path / "extra"
    (extra / "broken").mkdir(parents=True)
    (extra / "broken" / "task.json").write_text('{"name": "broken", "type": "poetry"}')
    sentiment = toy_tasks["toy_sentiment"]
    spare = dataclasses.replace(  # other rows than any toy task's: no cached embedding
        sentiment,
        spec=dataclasses.replace(sentiment.spec, name="spare"),
        splits={**sentiment.splits, "train": sentiment.train[:10]},
    )
    save_task_dir(spare, extra / "spare")
    args = ["evaluate", str(results), "--methods", "fused", "--library", str(env)]
    cached = sorted((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []
    result = runner.invoke(app, [*args, "--library", str(extra)])
    assert result.exit_code == 0, result.output
    assert "left out of the ranked pool: broken (" in result.output
    assert "spare (not embedded in the cache)" in result.output
    made = sorted((tmp_path / "cache").rglob("*"))
    assert not [
        p for p in made if p not in cached and "spare" in p.read_bytes().decode(errors="ignore")
    ]
    bad = runner.invoke(app, [*args, "--pool", "everything"])
    assert bad.exit_code == 2 and "--pool takes measured or library" in bad.output


def test_evaluate_fits_on_one_set_and_scores_another(env, tmp_path) -> None:
    results = _toy_matrix(tmp_path / "toy.csv")
    flipped = tmp_path / "flipped.csv"  # another model's evidence: the opposite order
    lines = results.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    body = [",".join([*r[:3], str(100 - float(r[3])), r[4], str(-float(r[5])), r[6]]) for r in rows]
    flipped.write_text("\n".join([lines[0], *body]) + "\n")
    (tmp_path / "flipped.sweep.json").write_text('{"encoder": "FacebookAI/roberta-base@abc"}')
    methods = ("--methods", "datasize,learned", "--library", str(env), "--json")
    own = json.loads(_run("evaluate", "--test", str(results), *methods).stdout)
    ranker = tmp_path / "ranker.json"
    crossed = _run(
        "evaluate", "--train", str(flipped), "--test", str(results), *methods,
        "--save-ranker", str(ranker),
    )  # fmt: skip
    assert crossed.exit_code == 0, crossed.output
    learned = lambda data: next(r for r in data["summary"] if r["method"] == "learned")  # noqa: E731
    assert learned(json.loads(crossed.stdout))["rho"] > learned(own)["rho"]
    assert json.loads(ranker.read_text())["transfer_model"] == "roberta-base@abc"
    both = runner.invoke(app, ["evaluate", str(results), "--test", str(results)])
    assert both.exit_code == 2 and "once" in both.output


def test_the_results_page_compares_evidence_sets(env, tmp_path, monkeypatch) -> None:
    results = _toy_matrix(tmp_path / "toy.csv")
    # Coverage counts the --library folders, not the tasks root setting.
    monkeypatch.setenv("TASKREC_TASKS_ROOT", str(tmp_path / "elsewhere"))
    get_settings.cache_clear()
    (tmp_path / "toy.sweep.json").write_text('{"encoder": "tiny@1", "source_n": 1000}')
    partial = tmp_path / "partial.csv"  # a second set: fewer sources, its own protocol
    kept = [line for line in results.read_text().splitlines() if not line.startswith("toy_qa,")]
    partial.write_text("\n".join(kept) + "\n")
    rest = tmp_path / "rest.csv"  # the rows partial left out: partial+rest is the big set again
    header, *lines = results.read_text().splitlines()
    rest.write_text("\n".join([header, *(x for x in lines if x.startswith("toy_qa,"))]) + "\n")
    plus = tmp_path / "a+b.csv"  # one file whose name holds the separator
    plus.write_text(partial.read_text())
    page = tmp_path / "docs" / "results.md"
    result = _run(
        "evaluate", str(results), "--library", str(env),
        "--methods", "random,datasize,semb,learned,oracle", "--report", str(page),
        "--evidence-set", f"big={results}", "--evidence-set", f"small={partial}",
        "--evidence-set", f"joined={partial}+{rest}", "--evidence-set", f"plus={plus}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text()
    section = text.split("## Evidence sets")[1].split("## Gains per target")[0]
    assert "| big | tiny@1 | ≤ 1,000 |" in section and "| small | ? | all |" in section
    first = {}  # each set's row of the first table: what it measured
    for line in section.splitlines():
        first.setdefault(line.split("|")[1].strip() if "|" in line else "", line.split("|")[5:])
    assert first["plus"] == first["small"]
    assert first["joined"] == first["big"]  # as one file: the same targets, sources, seeds
    assert "| learned |" in section and "| fitted on \\ scored on | big | small |" in section
    best = section.split("Ranked best (lowest Regret@3, then ρ): ")[1].split("\n")[0]
    assert all(f"{name}'s targets by **" in best for name in ("big", "small", "joined", "plus"))
    assert "**Calibration coverage:** 5 of 5 library tasks have a donor record" in section
    assert "--evidence-set=small=" in text  # the page reruns as it ran
    alone = runner.invoke(app, ["evaluate", str(results), "--evidence-set", f"big={results}"])
    assert alone.exit_code == 2 and "--report" in alone.output
    # Two protocols or models are never one set; a pair measured twice, an empty part refused
    other = tmp_path / "other.csv"  # the same protocol, another model fine-tuned
    other.write_text(rest.read_text())
    (tmp_path / "other.sweep.json").write_text('{"encoder": "roberta-base", "source_n": 1000}')
    for joined, said in (
        (f"{results}+{rest}", "different protocols"),
        (f"{partial}+{partial}", "is measured in both"),
        (f"{results}+{other}", "different transfer models"),
        (f"{partial}+", "NAME=A.csv+B.csv"),
    ):
        args = ["evaluate", str(results), "--report", str(page), "--library", str(env)]
        refused = runner.invoke(app, [*args, "--evidence-set", f"bad={joined}"])
        assert refused.exit_code == 2 and said in refused.output, (joined, refused.output)


def test_importing_the_commands_does_not_import_torch() -> None:
    code = "import sys, service.cli.selection; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
