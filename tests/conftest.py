"""Fixtures shared by every test package: the shared tasks, a tiny random BERT, toy tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer, BertConfig, BertModel

from workers.data.schema import (
    Answer,
    ClassificationExample,
    Metric,
    MultipleChoiceExample,
    QAExample,
    RegressionExample,
    TaggingExample,
    TaskData,
    TaskSpec,
    TaskType,
)
from workers.encoder import EncoderRef, resolve_encoder

_DEFAULT_TASKS_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "tasks"


@pytest.fixture(scope="session")
def tasks_root() -> Path:
    """The shared task folders (``TASKREC_TASKS_ROOT`` overrides); skips the test if absent."""
    root = Path(os.environ.get("TASKREC_TASKS_ROOT", _DEFAULT_TASKS_ROOT)).resolve()
    if not root.is_dir():
        pytest.skip(f"shared tasks not found at {root} (set TASKREC_TASKS_ROOT)")
    return root


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads and lose a lot to oversubscription when test
    processes (Celery workers, servers) share a small machine; real-model tests ask for more."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT saved like any Hugging Face model folder."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None).path)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_ref(tiny_encoder_dir) -> EncoderRef:
    return resolve_encoder(str(tiny_encoder_dir))


@pytest.fixture()
def tiny(tiny_ref):
    """(encoder, tokenizer) freshly loaded, so a test may train it."""
    from workers.encoder import load_encoder

    return load_encoder(tiny_ref)


def _sentences(n: int, offset: int = 0) -> list[ClassificationExample]:
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    return [
        ClassificationExample(
            id=f"s{i}",
            text=f"the film was {words[(i + offset) % 6]} and {words[(i * 7 + offset) % 6]}",
            label="positive" if (i + offset) % 6 < 3 else "negative",
        )
        for i in range(n)
    ]


@pytest.fixture()
def sentiment_task() -> TaskData:
    spec = TaskSpec(
        "toy_sentiment", TaskType.CLASSIFICATION, Metric.ACCURACY, ("negative", "positive")
    )
    return TaskData(spec, {"train": _sentences(48), "validation": _sentences(16, 1)})


@pytest.fixture()
def toy_tasks(sentiment_task) -> dict[str, TaskData]:
    """One small task of each of the five types."""
    regression = TaskData(
        TaskSpec("toy_sts", TaskType.REGRESSION, Metric.PEARSON),
        {
            split: [
                RegressionExample(f"r{i}", f"a man plays {i}", f"a man sings {i % 3}", float(i % 5))
                for i in range(n)
            ]
            for split, n in (("train", 24), ("validation", 10))
        },
    )
    choice = TaskData(
        TaskSpec("toy_choice", TaskType.MULTIPLE_CHOICE, Metric.ACCURACY),
        {
            split: [
                MultipleChoiceExample(
                    f"m{i}",
                    "the sky is",
                    "what colour?",
                    ("blue", "green", "red")[: 2 + i % 2],
                    i % 2,
                )
                for i in range(n)
            ]
            for split, n in (("train", 16), ("validation", 8))
        },
    )
    context = "Paris is the capital of France. " + "It has many old streets. " * 30
    qa = TaskData(
        TaskSpec("toy_qa", TaskType.EXTRACTIVE_QA, Metric.SQUAD),
        {
            split: [
                QAExample(f"q{i}", context, "What is the capital of France?", (Answer("Paris", 0),))
                for i in range(n)
            ]
            for split, n in (("train", 8), ("validation", 4))
        },
    )
    tags = TaskData(
        TaskSpec("toy_ner", TaskType.SEQUENCE_LABELING, Metric.SEQEVAL_F1, ("O", "B-PER", "I-PER")),
        {
            split: [
                TaggingExample(
                    f"t{i}", ("John", "Smith", "walked", "home"), ("B-PER", "I-PER", "O", "O")
                )
                for i in range(n)
            ]
            for split, n in (("train", 16), ("validation", 8))
        },
    )
    return {t.name: t for t in (sentiment_task, regression, choice, qa, tags)}
