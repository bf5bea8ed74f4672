"""The engine on real shared tasks with the packaged MiniLM (offline): a short real transfer,
and real embeddings that tell task types apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.data.loaders import load_task_dir
from workers.data.sampling import apply_regime
from workers.embeddings import EmbeddingConfig, compute_taskemb, compute_textemb
from workers.encoder import load_encoder, resolve_encoder
from workers.features import FeatureConfig
from workers.finetune import TrainConfig
from workers.similarity import cosine
from workers.transfer import TransferPlan, run_transfer

pytestmark = pytest.mark.integration

SHORT = TrainConfig(
    epochs=1, batch_size=16, learning_rate=5e-5, features=FeatureConfig(max_length=96), device="cpu"
)


@pytest.fixture(scope="module")
def minilm():
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # a real model does use every core
    ref = resolve_encoder(None)
    yield ref, *load_encoder(ref)
    torch.set_num_threads(before)


def test_real_transfer_small_source_to_small_target(minilm, tasks_root):
    _, encoder, tokenizer = minilm
    source = apply_regime(load_task_dir(tasks_root / "sick"), "limited", seed=0, train_n=128)
    target = apply_regime(
        load_task_dir(tasks_root / "rte"), "limited", seed=0, train_n=64, eval_n=48
    )
    plan = TransferPlan(seeds=(0,), source_train=SHORT, target_train=SHORT)
    result = run_transfer(plan, [source], target, encoder, tokenizer)
    assert result.metric == "accuracy" and result.sources == ["sick"]
    for value in (result.baseline.mean, result.transfer.mean):
        assert 0 <= value <= 100 and not math.isnan(value)
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)
    assert result.source_stages[0].metrics["sick"]["score"] > 40  # 3-way NLI; chance is 33


def test_real_embeddings_separate_task_types(minilm, tasks_root):
    ref, encoder, tokenizer = minilm
    config = EmbeddingConfig(
        max_examples=32, batch_size=16, features=FeatureConfig(max_length=96), device="cpu"
    )
    tasks = {n: load_task_dir(tasks_root / n) for n in ("sst2", "rotten_tomatoes", "conll2003_ner")}
    text = {
        n: compute_textemb(t, encoder, tokenizer, ref, config)["textemb"].components["mean"]
        for n, t in tasks.items()
    }
    assert cosine(text["sst2"], text["rotten_tomatoes"]) > cosine(
        text["sst2"], text["conll2003_ner"]
    )
    fisher = {n: compute_taskemb(t, encoder, tokenizer, ref, config) for n, t in tasks.items()}
    assert len(fisher["sst2"].components) == 2 * 6 + 1
    assert all((v >= 0).all() for e in fisher.values() for v in e.components.values())
    assert np.isfinite(fisher["conll2003_ner"].components["layer5.output"]).all()
