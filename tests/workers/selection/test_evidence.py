"""Evidence files: CSV and JSONL read alike, every problem located, transfer models named once."""

from __future__ import annotations

import json

import pytest

from workers.selection.evidence import (
    MAX_PROBLEMS,
    EvidenceFileError,
    parse_evidence,
    same_transfer_model,
    transfer_model_name,
)

KNOWN = {"rte", "mnli", "snli", "qnli"}


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _problems(data: bytes, filename: str = "e.csv", **kwargs) -> list[tuple]:
    with pytest.raises(EvidenceFileError) as caught:
        parse_evidence(data, filename, known_tasks=KNOWN, **kwargs)
    return [(p.row, p.field, p.message) for p in caught.value.problems]


def test_a_sweep_csv_reads_as_is():
    data = _csv(
        "source,target,seed,score,baseline,gain,metric",
        "mnli,rte,0,70.0,60.0,10.0,accuracy",
        "snli,rte,0,65.0,60.0,5.0,accuracy",
    )
    parsed = parse_evidence(data, "matrix.csv", known_tasks=KNOWN)
    assert [(r.source, r.gain, r.baseline) for r in parsed.rows] == [
        ("mnli", 10.0, 60.0),
        ("snli", 5.0, 60.0),
    ]
    assert parsed.gain_basis == "given" and parsed.metrics == ["accuracy"]


def test_jsonl_with_the_four_required_fields_ranks_like_true_gains():
    rows = [
        {"source": "mnli", "target": "rte", "seed": 0, "score": 0.71},
        {"source": "snli", "target": "rte", "seed": 0, "score": 0.65},
        {"source": "qnli", "target": "rte", "seed": 0, "score": 0.62},
    ]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    parsed = parse_evidence(data, "roberta.jsonl", known_tasks=KNOWN)
    gains = {r.source: r.gain for r in parsed.rows}
    assert parsed.gain_basis == "mean of sources"
    assert sorted(gains, key=gains.get, reverse=True) == ["mnli", "snli", "qnli"]
    assert sum(gains.values()) == pytest.approx(0.0)


def test_only_a_gain_gives_the_baseline():
    parsed = parse_evidence(_csv("source,target,seed,score,gain", "mnli,rte,1,70,4"), "e.csv")
    assert parsed.rows[0].baseline == 66.0


def test_every_problem_is_named_by_line_and_field():
    data = _csv(
        "source,target,seed,score",
        "mnli,rte,0,70",
        "nope,rte,0,70",  # unknown source
        "mnli,rte,0,71",  # duplicate of line 2
        "snli,rte,x,70",  # bad seed
        "snli,rte,1,inf",  # non-finite score
        "qnli,rte,1,",  # missing score
        "rte,rte,1,50",  # its own source
        "snli,rte",  # too few cells
    )
    problems = _problems(data)
    assert problems == [
        (3, "source", "'nope' is not a library task"),
        (4, "seed", "duplicate of line 2 (same source, target and seed)"),
        (5, "seed", "seed must be a whole number, got 'x'"),
        (6, "score", "score must be a finite number, got 'inf'"),
        (7, "score", "missing score"),
        (8, "source", "a task cannot be its own source"),
        (9, None, "2 cells where the header has 4"),
    ]


def test_jsonl_problems_name_their_lines():
    data = b'{"source": "mnli", "target": "rte", "seed": 0, "score": 1}\n[1, 2]\n{bad\n'
    data += b'{"source": "snli", "target": "rte", "seed": true, "score": 1}\n'
    problems = _problems(data, "e.jsonl")
    assert [(row, field) for row, field, _ in problems] == [(2, None), (3, None), (4, "seed")]


def test_a_header_without_required_columns_is_one_problem():
    assert _problems(_csv("source,target,score", "mnli,rte,1")) == [
        (1, None, "missing column(s) seed in the header")
    ]


def test_empty_and_oversized_files_are_refused():
    assert _problems(b"") == [(None, None, "the file is empty (expected a header line)")]
    assert _problems(_csv("source,target,seed,score")) == [(None, None, "the file holds no rows")]
    many = _csv("source,target,seed,score", *(f"mnli,rte,{i},1" for i in range(5)))
    assert _problems(many, max_rows=3) == [(None, None, "more than 3 rows (the import limit)")]


def test_problems_stop_at_the_limit():
    data = _csv("source,target,seed,score", *(f"nope,rte,{i},1" for i in range(80)))
    assert len(_problems(data)) == MAX_PROBLEMS


def test_scale_does_not_change_the_order():
    lines = ["source,target,seed,score,baseline"]
    small = parse_evidence(_csv(*lines, "mnli,rte,0,0.7,0.6", "snli,rte,0,0.65,0.6"), "a.csv")
    large = parse_evidence(_csv(*lines, "mnli,rte,0,70,60", "snli,rte,0,65,60"), "a.csv")
    order = lambda p: sorted(p.rows, key=lambda r: -r.gain)  # noqa: E731
    assert [r.source for r in order(small)] == [r.source for r in order(large)]


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("roberta-base", "roberta-base"),
        ("FacebookAI/roberta-base", "roberta-base"),
        (" google-bert/bert-base-uncased ", "bert-base-uncased"),
        ("all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ("all-MiniLM-L6-v2@pkg-0.1.0-8985f621", "all-minilm-l6-v2@pkg-0.1.0-8985f621"),
        ("/models/My-BERT/", "my-bert"),
        ("./checkpoints/my-bert@3f2a", "my-bert@3f2a"),
        ("microsoft/deberta-v3-base", "microsoft/deberta-v3-base"),
    ],
)
def test_one_model_has_one_name(given, name):
    assert transfer_model_name(given) == name


def test_a_name_without_revision_matches_every_revision():
    assert same_transfer_model("all-minilm-l6-v2", "all-minilm-l6-v2@pkg-1")
    assert not same_transfer_model("all-minilm-l6-v2@pkg-2", "all-minilm-l6-v2@pkg-1")
    assert not same_transfer_model("roberta-base", "roberta-large")
    with pytest.raises(ValueError):
        transfer_model_name("  ")
