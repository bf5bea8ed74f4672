"""TaskEmb (Fisher), TextEmb and SEmb: shape, sign, determinism and what they separate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from workers.data.schema import ClassificationExample, TaskData
from workers.embeddings import (
    EmbeddingConfig,
    compute_taskemb,
    compute_textemb,
    resolve_precision,
)
from workers.similarity import cosine

CONFIG = EmbeddingConfig(max_examples=32, batch_size=8, train_epochs=1.0, device="cpu")


def test_taskemb_components_have_fixed_dimensions_and_are_non_negative(tiny, tiny_ref, toy_tasks):
    encoder, tokenizer = tiny
    for task in toy_tasks.values():
        emb = compute_taskemb(task, encoder, tokenizer, tiny_ref, CONFIG)
        layers = encoder.config.num_hidden_layers
        expected = [f"layer{i}.{p}" for i in range(layers) for p in ("attention", "output")]
        assert list(emb.components) == [*expected, "cls"]
        for name, vector in emb.components.items():
            assert vector.shape == (encoder.config.hidden_size,)
            assert (vector >= 0).all()
            # A tagging loss never touches [CLS], so its CLS Fisher is exactly zero.
            assert vector.sum() > 0 or (name == "cls" and task.name == "toy_ner")
        assert emb.encoder == tiny_ref and emb.method == "taskemb"


def test_taskemb_is_deterministic_and_leaves_the_encoder_untouched(tiny, tiny_ref, sentiment_task):
    encoder, tokenizer = tiny
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    first = compute_taskemb(sentiment_task, encoder, tokenizer, tiny_ref, CONFIG)
    second = compute_taskemb(sentiment_task, encoder, tokenizer, tiny_ref, CONFIG)
    for name in first.components:
        np.testing.assert_array_equal(first.components[name], second.components[name])
    assert all((encoder.state_dict()[k] == v).all() for k, v in before.items())


def test_taskemb_uses_a_bounded_sample(tiny, tiny_ref, sentiment_task):
    encoder, tokenizer = tiny
    small = dataclasses.replace(CONFIG, max_examples=10)
    assert compute_taskemb(sentiment_task, encoder, tokenizer, tiny_ref, small).num_examples == 10


def _resample(task: TaskData, seed: int) -> TaskData:
    from workers.data.sampling import subsample

    return TaskData(task.spec, {"train": subsample(task.train, 24, seed)})


@pytest.mark.parametrize("method", ["taskemb", "textemb"])
def test_two_samples_of_a_task_are_closer_than_another_task_type(method, tiny, tiny_ref, toy_tasks):
    encoder, tokenizer = tiny
    sentiment = toy_tasks["toy_sentiment"]

    def embed(task):
        if method == "taskemb":
            emb = compute_taskemb(task, encoder, tokenizer, tiny_ref, CONFIG)
        else:
            emb = compute_textemb(task, encoder, tokenizer, tiny_ref, CONFIG)["textemb"]
        return np.concatenate(list(emb.components.values()))

    a, b = embed(_resample(sentiment, 1)), embed(_resample(sentiment, 2))
    for other in ("toy_ner", "toy_qa"):
        assert cosine(a, b) > cosine(a, embed(toy_tasks[other]))


def test_unlabelled_task_samples_labels_from_the_model(tiny, tiny_ref, sentiment_task):
    encoder, tokenizer = tiny
    rows = [ClassificationExample(ex.id, ex.text) for ex in sentiment_task.train]
    unlabelled = TaskData(sentiment_task.spec, {"train": rows})
    emb = compute_taskemb(unlabelled, encoder, tokenizer, tiny_ref, CONFIG)
    assert emb.settings["labelled"] is False
    assert all((v >= 0).all() and v.sum() > 0 for v in emb.components.values())


def test_a_label_donor_trains_the_head_that_labels_an_unlabelled_task(
    tiny, tiny_ref, sentiment_task
):
    encoder, tokenizer = tiny
    rows = [ClassificationExample(ex.id, ex.text) for ex in sentiment_task.train]
    unlabelled = TaskData(dataclasses.replace(sentiment_task.spec, name="new"), {"train": rows})
    random_head = compute_taskemb(unlabelled, encoder, tokenizer, tiny_ref, CONFIG)
    donated = compute_taskemb(
        unlabelled, encoder, tokenizer, tiny_ref, CONFIG, label_donor=sentiment_task
    )
    assert donated.settings["label_donor"] == sentiment_task.name
    assert "label_donor" not in random_head.settings
    assert any(
        not np.allclose(donated.components[c], random_head.components[c])
        for c in donated.components
    )
    labelled = compute_taskemb(sentiment_task, encoder, tokenizer, tiny_ref, CONFIG)
    ignored = compute_taskemb(
        sentiment_task, encoder, tokenizer, tiny_ref, CONFIG, label_donor=unlabelled
    )
    assert "label_donor" not in ignored.settings  # a task with labels trains on its own
    for c in labelled.components:
        np.testing.assert_allclose(ignored.components[c], labelled.components[c], rtol=1e-5)


def test_textemb_and_semb_are_one_mean_vector_each(tiny, tiny_ref, toy_tasks):
    encoder, tokenizer = tiny
    embs = compute_textemb(toy_tasks["toy_choice"], encoder, tokenizer, tiny_ref, CONFIG)
    assert set(embs) == {"textemb", "semb"}
    for emb in embs.values():
        assert list(emb.components) == ["mean"]
        assert emb.components["mean"].shape == (encoder.config.hidden_size,)
    again = compute_textemb(toy_tasks["toy_choice"], encoder, tokenizer, tiny_ref, CONFIG)
    np.testing.assert_array_equal(
        embs["textemb"].components["mean"], again["textemb"].components["mean"]
    )


def test_bf16_vectors_agree_with_fp32_and_repeat(tiny, tiny_ref, sentiment_task):
    encoder, tokenizer = tiny
    bf16 = dataclasses.replace(CONFIG, precision="bf16")
    for compute in (compute_taskemb, compute_textemb):
        full = compute(sentiment_task, encoder, tokenizer, tiny_ref, CONFIG)
        half = compute(sentiment_task, encoder, tokenizer, tiny_ref, bf16)
        again = compute(sentiment_task, encoder, tokenizer, tiny_ref, bf16)
        for a, b, c in zip(_embeddings(full), _embeddings(half), _embeddings(again), strict=True):
            for name in a.components:
                assert cosine(a.components[name], b.components[name]) > 0.99, name
                np.testing.assert_array_equal(b.components[name], c.components[name])


def _embeddings(result) -> list:
    return list(result.values()) if isinstance(result, dict) else [result]


def test_precision_auto_resolves_to_one_the_machine_runs_fast():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8")


def test_the_encoder_keeps_its_attention_after_a_bf16_fisher_pass(tiny, tiny_ref, sentiment_task):
    encoder, tokenizer = tiny
    before = encoder.config._attn_implementation
    bf16 = dataclasses.replace(CONFIG, precision="bf16")
    compute_taskemb(sentiment_task, encoder, tokenizer, tiny_ref, bf16)
    assert encoder.config._attn_implementation == before


def test_cached_embeddings_are_keyed_by_the_rows_they_read(tmp_path, tiny_ref, sentiment_task):
    """A task loaded with or without its validation and test rows shares its embeddings, and a
    read-only seed cache is read but never written."""
    import dataclasses

    from workers.cache import EmbeddingCache
    from workers.embedder import Embedder, embedding_data_hash
    from workers.embeddings import EmbeddingConfig

    with_test = dataclasses.replace(
        sentiment_task, splits={**sentiment_task.splits, "test": sentiment_task.train[:4]}
    )
    assert embedding_data_hash(with_test) == embedding_data_hash(sentiment_task)
    seed = tmp_path / "seed"
    config = EmbeddingConfig(max_examples=8)
    Embedder(tiny_ref, config, EmbeddingCache(seed)).embed(sentiment_task, ["textemb"])
    seeded = sorted(p.name for p in seed.iterdir())
    own = tmp_path / "own"
    cache = EmbeddingCache(own, seeds=[seed])
    assert cache.get(next(iter(seeded)).split(".")[0]) is not None
    Embedder(tiny_ref, config, cache).embed(with_test, ["textemb"])  # a hit: nothing computed
    assert not own.exists() and sorted(p.name for p in seed.iterdir()) == seeded
