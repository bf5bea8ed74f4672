"""Embedding through the on-disk cache: a second run recomputes (and loads) nothing."""

from __future__ import annotations

import numpy as np

from workers.cache import EmbeddingCache
from workers.embedder import Embedder
from workers.embeddings import EmbeddingConfig

CONFIG = EmbeddingConfig(max_examples=16, batch_size=8, device="cpu")


def test_second_embed_comes_from_the_cache_without_loading_the_encoder(
    tiny_ref, tmp_path, sentiment_task
):
    first = Embedder(tiny_ref, CONFIG, EmbeddingCache(tmp_path)).embed(sentiment_task)
    second_embedder = Embedder(tiny_ref, CONFIG, EmbeddingCache(tmp_path))
    second = second_embedder.embed(sentiment_task)
    assert second_embedder._loaded is None  # never touched the model
    for method in first:
        assert second[method].encoder == tiny_ref
        for name, vector in first[method].components.items():
            np.testing.assert_array_equal(second[method].components[name], vector)


def test_changed_settings_or_data_miss_the_cache(tiny_ref, tmp_path, sentiment_task):
    Embedder(tiny_ref, CONFIG, EmbeddingCache(tmp_path)).embed(sentiment_task, ["textemb"])
    files = set(tmp_path.iterdir())
    other = EmbeddingConfig(max_examples=8, batch_size=8, device="cpu")
    Embedder(tiny_ref, other, EmbeddingCache(tmp_path)).embed(sentiment_task, ["textemb"])
    assert len(set(tmp_path.iterdir()) - files) == 2  # one new .npz + .json


def test_unknown_method_is_refused(tiny_ref, tmp_path, sentiment_task):
    import pytest

    with pytest.raises(ValueError, match="unknown method"):
        Embedder(tiny_ref, CONFIG, EmbeddingCache(tmp_path)).embed(sentiment_task, ["fisher"])


def test_fp32_keeps_the_keys_made_before_precision_was_a_setting(tiny_ref, sentiment_task):
    from dataclasses import asdict

    from workers.cache import cache_key
    from workers.embedder import _relevant

    settings = asdict(CONFIG)
    before = {k: v for k, v in settings.items() if k != "precision"}  # an older config's fields
    data = sentiment_task.content_hash()
    for method in ("taskemb", "textemb"):
        old = cache_key(data, tiny_ref, method, _relevant(before, method))
        assert cache_key(data, tiny_ref, method, _relevant(settings, method)) == old
        bf16 = _relevant({**settings, "precision": "bf16"}, method)
        assert cache_key(data, tiny_ref, method, bf16) != old
